"""Reading the status data: windows, day and minute series, statuses, incidents.

One layer that the page, the JSON, the API and the admin share. Everything
here reads roll-ups or at most the last hour of minute rows (incidents read
failing minute rows only), so its cost grows with routes x days, not with
traffic.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .config import FAILURE, HISTOGRAM_SIZE, NEUTRAL, SUCCESS, Settings
from .models import HISTOGRAM_COLUMNS, UNMATCHED_RULE, Log, LogDay, LogHour, Route, percentile

if TYPE_CHECKING:
    from .state import StatusState

OPERATIONAL = "operational"
DEGRADED = "degraded_performance"
PARTIAL_OUTAGE = "partial_outage"
MAJOR_OUTAGE = "major_outage"
NO_DATA = "no_data"
#: From best to worst; the overall status is the worst of the routes'.
STATUSES = (NO_DATA, OPERATIONAL, DEGRADED, PARTIAL_OUTAGE, MAJOR_OUTAGE)

UPTIME_WINDOWS = {"24h": None, "7d": 7, "30d": 30, "90d": 90}
#: Days of day buckets every route status is computed from: the longest uptime window.
DAY_SPAN = 90


@dataclass(slots=True)
class Bucket:
    """Requests of one route over one span (a minute, a day, a window)."""

    start: datetime
    total: int = 0
    success: int = 0
    failure: int = 0
    neutral: int = 0
    latency_sum: float = 0.0
    latency_max: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_SIZE)

    @property
    def classified(self) -> int:
        return self.success + self.failure

    @property
    def uptime(self) -> float | None:
        """success / (success + failure) in percent; ``None`` without classified requests."""
        return 100.0 * self.success / self.classified if self.classified else None

    @property
    def failure_ratio(self) -> float | None:
        return self.failure / self.classified if self.classified else None

    @property
    def p95(self) -> float | None:
        """Estimated 95th percentile latency in milliseconds."""
        return percentile(self.histogram, 0.95, self.latency_max)

    @property
    def latency_mean(self) -> float | None:
        return self.latency_sum / self.total if self.total else None

    def add(self, other: Bucket) -> None:
        self.total += other.total
        self.success += other.success
        self.failure += other.failure
        self.neutral += other.neutral
        self.latency_sum += other.latency_sum
        self.latency_max = max(self.latency_max, other.latency_max)
        for i, count in enumerate(other.histogram):
            self.histogram[i] += count


@dataclass
class RouteStatus:
    """A route as the page shows it."""

    id: int
    rule: str
    endpoint: str
    name: str
    doc: str
    hidden: bool
    position: int
    status: str
    #: The recent window the status was computed from.
    window: Bucket
    #: Uptime in percent per window ("24h", "7d", "30d", "90d"); None = no data.
    uptime: dict[str, float | None]
    #: One bucket per UTC day, oldest first, the last one today.
    days: list[Bucket]
    #: One bucket per minute, oldest first, the last one the current minute.
    minutes: list[Bucket]
    #: Start of the newest minute (or day) that has data; None if never.
    last_data_at: datetime | None
    #: When the route's name, description or visibility last changed.
    updated_at: datetime | None
    #: (successes, failures) behind the "7d", "30d" and "90d" uptimes.
    window_counts: dict[str, tuple[int, int]] = field(default_factory=dict)


@dataclass
class Incident:
    """A run of failing minutes of one route."""

    route_id: int
    route_name: str
    rule: str
    start: datetime
    #: End of the last failing minute.
    end: datetime
    ongoing: bool
    failures: int
    requests: int
    #: The worst minute's failure ratio (0-1).
    peak_ratio: float

    @property
    def id(self) -> str:
        return f"{self.route_id}-{int(self.start.timestamp()) // 60}"

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def floor_minute(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(second=0, microsecond=0)


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)


def floor_day(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def status_of(bucket: Bucket, settings: Settings) -> str:
    """The status a window's failure ratio gives, with the configured thresholds."""
    ratio = bucket.failure_ratio
    if ratio is None:
        return NO_DATA
    if ratio >= settings.major_outage_ratio:
        return MAJOR_OUTAGE
    if ratio >= settings.partial_outage_ratio:
        return PARTIAL_OUTAGE
    if ratio >= settings.degraded_ratio:
        return DEGRADED
    return OPERATIONAL


def overall_status(statuses: Iterable[str]) -> str:
    """The worst status among routes; ``no_data`` only if no route has data."""
    return max(statuses, key=STATUSES.index, default=NO_DATA)


def _rollup_columns(model: type[LogDay] | type[LogHour]) -> list[sa.ColumnElement]:
    return [
        model.total,
        model.success,
        model.failure,
        model.neutral,
        model.latency_sum,
        model.latency_max,
        *(getattr(model, c) for c in HISTOGRAM_COLUMNS),
    ]


def _bucket_from_rollup(start: datetime, row: Sequence) -> Bucket:
    return Bucket(
        start=start,
        total=int(row[0] or 0),
        success=int(row[1] or 0),
        failure=int(row[2] or 0),
        neutral=int(row[3] or 0),
        latency_sum=float(row[4] or 0),
        latency_max=float(row[5] or 0),
        histogram=[int(v or 0) for v in row[6 : 6 + HISTOGRAM_SIZE]],
    )


def _bucket_from_row(start: datetime, row: Sequence) -> Bucket:
    """A roll-up row's columns as they are: integers already, no sums to convert."""
    return Bucket(start, row[0], row[1], row[2], row[3], row[4], row[5], list(row[6:]))


@functools.cache
def _routes_query(include_hidden: bool) -> sa.Select:
    # Built once: building a statement costs more than running it on a small table.
    query = sa.select(Route.__table__).where(Route.rule != UNMATCHED_RULE)
    if not include_hidden:
        query = query.where(Route.hidden == sa.false())
    return query.order_by(Route.position, Route.id)


def visible_routes(conn: sa.Connection, include_hidden: bool = False) -> list[sa.Row]:
    return list(conn.execute(_routes_query(include_hidden)))


@functools.cache
def _minute_query() -> sa.Select:
    outcome_sum = [
        sa.func.sum(sa.case((Log.outcome == code, Log.count), else_=0)).label(f"o{code}")
        for code in (SUCCESS, FAILURE, NEUTRAL)
    ]
    return sa.select(
        Log.route_id,
        Log.minute,
        sa.func.sum(Log.count),
        *outcome_sum,
        sa.func.sum(Log.latency_sum),
        sa.func.max(Log.latency_max),
        *(sa.func.sum(getattr(Log, c)) for c in HISTOGRAM_COLUMNS),
    ).group_by(Log.route_id, Log.minute)


def minute_series(
    conn: sa.Connection, *where: sa.ColumnElement[bool]
) -> dict[int, dict[datetime, Bucket]]:
    """Per route, per minute: the minute rows that match ``where``, summed by outcome."""
    series: dict[int, dict[datetime, Bucket]] = {}
    for row in conn.execute(_minute_query().where(*where)):
        series.setdefault(row[0], {})[row[1]] = _bucket_from_rollup(row[1], row[2:])
    return series


@functools.cache
def _day_query() -> sa.Select:
    return sa.select(LogDay.route_id, LogDay.day, *_rollup_columns(LogDay))


def day_series(
    conn: sa.Connection, *where: sa.ColumnElement[bool]
) -> dict[int, dict[datetime, Bucket]]:
    """Per route, per UTC day: the day roll-ups that match ``where``."""
    series: dict[int, dict[datetime, Bucket]] = {}
    for row in conn.execute(_day_query().where(*where)):
        series.setdefault(row[0], {})[row[1]] = _bucket_from_row(row[1], row[2:])
    return series


def uptime_24h_of(
    conn: sa.Connection, route_ids: Sequence[int], now: datetime
) -> dict[int, float | None]:
    """Per route, uptime over the hour roll-ups of the 24 hours up to ``now``."""
    if not route_ids:
        return {}
    this_hour = floor_hour(now)
    query = (
        sa.select(LogHour.route_id, sa.func.sum(LogHour.success), sa.func.sum(LogHour.failure))
        .where(
            LogHour.route_id.in_(route_ids),
            LogHour.hour >= this_hour - timedelta(hours=23),
            LogHour.hour <= this_hour,
        )
        .group_by(LogHour.route_id)
    )
    uptime: dict[int, float | None] = {}
    for route_id, success, failure in conn.execute(query):
        success, failure = int(success or 0), int(failure or 0)
        uptime[route_id] = 100.0 * success / (success + failure) if success + failure else None
    return uptime


def _sum(start: datetime, buckets: Iterable[Bucket]) -> Bucket:
    total = Bucket(start=start)
    for bucket in buckets:
        total.add(bucket)
    return total


def _window_counts(days: Sequence[Bucket]) -> dict[str, tuple[int, int]]:
    """(successes, failures) of the last 7, 30 and 90 of ``days``, in one pass."""
    ends = {length: label for label, length in UPTIME_WINDOWS.items() if length}
    counts: dict[str, tuple[int, int]] = {}
    success = failure = 0
    for n, bucket in enumerate(reversed(days), 1):
        success += bucket.success
        failure += bucket.failure
        if n in ends:
            counts[ends[n]] = (success, failure)
    return counts


def route_statuses(
    state: StatusState,
    now: datetime | None = None,
    days: int = 90,
    minutes: int = 60,
    include_hidden: bool = False,
) -> list[RouteStatus]:
    """Every visible route with its status, uptimes, day and minute series.

    Reads everything it needs from the database on every call; the page reads
    the same through :class:`~.snapshots.SnapshotReader`, which keeps what
    has not changed.

    :param now: the moment to look from (default: now, UTC).
    :param days: length of the day series (default 90, the page's strip).
    :param minutes: length of the minute series (default 60).
    """
    state.route_ids()
    settings = state.settings
    now = (now or utcnow()).astimezone(timezone.utc)
    this_minute = floor_minute(now)
    today = floor_day(now)
    minute_since = this_minute - timedelta(minutes=max(minutes, settings.status_window) - 1)
    day_since = today - timedelta(days=max(days, DAY_SPAN) - 1)

    with state.engine.connect() as conn:
        rows = visible_routes(conn, include_hidden)
        ids = [row.id for row in rows]
        by_minute = minute_series(
            conn, Log.route_id.in_(ids), Log.minute >= minute_since, Log.minute <= this_minute
        )
        uptime_24h = uptime_24h_of(conn, ids, now)
        by_day = day_series(
            conn, LogDay.route_id.in_(ids), LogDay.day >= day_since, LogDay.day <= today
        )
    return assemble_statuses(rows, by_minute, by_day, uptime_24h, now, settings, days, minutes)


def assemble_statuses(
    rows: Sequence[sa.Row],
    by_minute: Mapping[int, Mapping[datetime, Bucket]],
    by_day: Mapping[int, Mapping[datetime, Bucket]],
    uptime_24h: Mapping[int, float | None],
    now: datetime,
    settings: Settings,
    days: int = 90,
    minutes: int = 60,
) -> list[RouteStatus]:
    """Routes as the page shows them, from their buckets per minute and per day.

    Looks buckets up by start, so the mappings may hold more than the windows
    (the snapshot reader keeps buckets across calls); a bucket missing from
    them is an empty one.
    """
    this_minute = floor_minute(now)
    today = floor_day(now)
    window_length = settings.status_window
    fetched = max(minutes, window_length)
    minute_starts = [this_minute - timedelta(minutes=n) for n in range(fetched - 1, -1, -1)]
    span = max(days, DAY_SPAN)
    day_starts = [today - timedelta(days=n) for n in range(span - 1, -1, -1)]
    empty: dict[datetime, Bucket] = {}
    result = []
    for row in rows:
        route_minutes = by_minute.get(row.id, empty)
        route_days = by_day.get(row.id, empty)
        minute_list = [route_minutes.get(start) or Bucket(start=start) for start in minute_starts]
        day_list = [route_days.get(start) or Bucket(start=start) for start in day_starts]
        window = _sum(minute_starts[-window_length], minute_list[-window_length:])
        counts = _window_counts(day_list)
        uptime: dict[str, float | None] = {"24h": uptime_24h.get(row.id)}
        for label, (success, failure) in counts.items():
            uptime[label] = 100.0 * success / (success + failure) if success + failure else None
        last = next((b.start for b in reversed(minute_list) if b.total), None)
        if last is None:
            last = next((b.start for b in reversed(day_list) if b.total), None)
        result.append(
            RouteStatus(
                id=row.id,
                rule=row.rule,
                endpoint=row.endpoint,
                name=row.name,
                doc=row.doc,
                hidden=bool(row.hidden),
                position=row.position,
                status=status_of(window, settings),
                window=window,
                uptime=uptime,
                days=day_list[-days:],
                minutes=minute_list[-minutes:],
                last_data_at=last,
                updated_at=row.updated_at,
                window_counts=counts,
            )
        )
    return result


def window_totals(
    state: StatusState, since: datetime, route_ids: Sequence[int] | None = None
) -> dict[int, Bucket]:
    """Per route, requests since ``since`` (rounded down to a UTC day), from the day roll-ups.

    The admin's "requests today" and "uptime today" come from here.
    """
    since = floor_day(since)
    with state.engine.connect() as conn:
        if route_ids is None:
            route_ids = [row.id for row in visible_routes(conn, include_hidden=True)]
        series = day_series(conn, LogDay.route_id.in_(route_ids), LogDay.day >= since)
    return {route_id: _sum(since, series.get(route_id, {}).values()) for route_id in route_ids}


def incidents(
    state: StatusState,
    now: datetime | None = None,
    since: datetime | None = None,
    limit: int | None = 20,
    include_hidden: bool = False,
) -> list[Incident]:
    """Runs of failing minutes per route, newest first.

    A minute fails when its failure ratio reaches ``FLASK_STATUS_PARTIAL_OUTAGE_RATIO``;
    failing minutes at most ``FLASK_STATUS_INCIDENT_GAP`` minutes apart form one
    incident. One that failed in the last ``max(1, gap)`` minutes is ongoing.

    :param since: oldest minute to consider (default: the minute retention).
    """
    settings = state.settings
    state.route_ids()
    now = (now or utcnow()).astimezone(timezone.utc)
    this_minute = floor_minute(now)
    since = since or incident_since(now, settings)
    with state.engine.connect() as conn:
        routes = {row.id: row for row in visible_routes(conn, include_hidden)}
        if not routes:
            return []
        failing = failing_minutes(
            conn,
            settings.partial_outage_ratio,
            Log.minute >= since,
            Log.minute <= this_minute,
            Log.route_id.in_(list(routes)),
        )
    return merge_incidents(failing, routes, now, settings, limit)


def incident_since(now: datetime, settings: Settings) -> datetime:
    """The oldest minute incidents are looked for in: the minute retention."""
    return floor_minute(now) - timedelta(days=settings.minute_retention_days)


def is_failing(failures: int, successes: int, ratio: float) -> bool:
    """Whether a minute with these counts fails: its failure ratio reaches ``ratio``."""
    return failures > 0 and failures / (failures + successes) >= ratio


#: One failing minute: route id, minute, failures, classified requests.
FailingMinute = tuple[int, datetime, int, int]


def failing_minutes(
    conn: sa.Connection, ratio: float, *where: sa.ColumnElement[bool]
) -> list[FailingMinute]:
    """The failing minutes among the minute rows that match ``where``, by route and minute."""
    failures = sa.func.sum(sa.case((Log.outcome == FAILURE, Log.count), else_=0))
    successes = sa.func.sum(sa.case((Log.outcome == SUCCESS, Log.count), else_=0))
    # Only (nearly) failing minutes leave the database: the ratio as a fraction,
    # multiplied out to stay in exact integers; is_failing() has the last word.
    num, den = Fraction(str(ratio)).limit_denominator(1_000_000).as_integer_ratio()
    query = (
        sa.select(Log.route_id, Log.minute, failures, successes)
        .where(*where)
        .group_by(Log.route_id, Log.minute)
        .having(failures > 0)
        .having(failures * den >= (failures + successes) * num)
        .order_by(Log.route_id, Log.minute)
    )
    found = []
    for route_id, minute, fail, ok in conn.execute(query):
        fail, ok = int(fail), int(ok)
        if is_failing(fail, ok, ratio):
            found.append((route_id, minute, fail, fail + ok))
    return found


def merge_incidents(
    failing: Iterable[FailingMinute],
    routes: Mapping[int, sa.Row],
    now: datetime,
    settings: Settings,
    limit: int | None = None,
) -> list[Incident]:
    """Incidents, newest first, from failing minutes sorted by route and minute."""
    return finish_incidents(chain_incidents(failing, routes, settings), now, settings, limit)


def chain_incidents(
    failing: Iterable[FailingMinute], routes: Mapping[int, sa.Row], settings: Settings
) -> list[Incident]:
    """Failing minutes (sorted by route and minute) chained into runs, in the same order.

    Minutes at most ``FLASK_STATUS_INCIDENT_GAP`` minutes apart share a run.
    None is marked ongoing yet: :func:`finish_incidents` does that.
    """
    gap = timedelta(minutes=settings.incident_gap + 1)
    found: list[Incident] = []
    current: Incident | None = None
    for route_id, minute, fail, classified in failing:
        if current is not None and current.route_id == route_id and minute - current.end < gap:
            current.end = minute + timedelta(minutes=1)
            current.failures += fail
            current.requests += classified
            current.peak_ratio = max(current.peak_ratio, fail / classified)
            continue
        route = routes[route_id]
        current = Incident(
            route_id=route_id,
            route_name=route.name,
            rule=route.rule,
            start=minute,
            end=minute + timedelta(minutes=1),
            ongoing=False,
            failures=fail,
            requests=classified,
            peak_ratio=fail / classified,
        )
        found.append(current)
    return found


def finish_incidents(
    found: list[Incident], now: datetime, settings: Settings, limit: int | None = None
) -> list[Incident]:
    """``found`` newest first, at most ``limit``, those still failing at ``now`` ongoing."""
    recent = floor_minute(now) - timedelta(minutes=max(1, settings.incident_gap))
    for incident in found:
        incident.ongoing = incident.end > recent
    found.sort(key=lambda i: (i.start, i.route_id), reverse=True)
    return found[:limit] if limit is not None else found
