"""Reading the status data: windows, day and minute series, statuses, incidents.

One layer that the page, the JSON, the API and the admin share. Everything
here reads roll-ups or at most the last hour of minute rows (incidents read
failing minute rows only), so its cost grows with routes x days, not with
traffic.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .config import FAILURE, HISTOGRAM_SIZE, NEUTRAL, SUCCESS, Settings
from .models import HISTOGRAM_COLUMNS, UNMATCHED_RULE, Log, LogDay, LogHour, Route, percentile

if TYPE_CHECKING:
    from .extension import StatusState

OPERATIONAL = "operational"
DEGRADED = "degraded_performance"
PARTIAL_OUTAGE = "partial_outage"
MAJOR_OUTAGE = "major_outage"
NO_DATA = "no_data"
#: From best to worst; the overall status is the worst of the routes'.
STATUSES = (NO_DATA, OPERATIONAL, DEGRADED, PARTIAL_OUTAGE, MAJOR_OUTAGE)

UPTIME_WINDOWS = {"24h": None, "7d": 7, "30d": 30, "90d": 90}


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


def visible_routes(conn: sa.Connection, include_hidden: bool = False) -> list[sa.Row]:
    query = sa.select(Route.__table__).where(Route.rule != UNMATCHED_RULE)
    if not include_hidden:
        query = query.where(Route.hidden == sa.false())
    return list(conn.execute(query.order_by(Route.position, Route.id)))


def minute_series(
    conn: sa.Connection, route_ids: Sequence[int], since: datetime
) -> dict[int, dict[datetime, Bucket]]:
    """Per route, per minute since ``since``: the minute rows summed by outcome."""
    if not route_ids:
        return {}
    outcome_sum = [
        sa.func.sum(sa.case((Log.outcome == code, Log.count), else_=0)).label(f"o{code}")
        for code in (SUCCESS, FAILURE, NEUTRAL)
    ]
    query = (
        sa.select(
            Log.route_id,
            Log.minute,
            sa.func.sum(Log.count),
            *outcome_sum,
            sa.func.sum(Log.latency_sum),
            sa.func.max(Log.latency_max),
            *(sa.func.sum(getattr(Log, c)) for c in HISTOGRAM_COLUMNS),
        )
        .where(Log.route_id.in_(route_ids), Log.minute >= since)
        .group_by(Log.route_id, Log.minute)
    )
    series: dict[int, dict[datetime, Bucket]] = {}
    for row in conn.execute(query):
        series.setdefault(row[0], {})[row[1]] = _bucket_from_rollup(row[1], row[2:])
    return series


def _rollup_series(
    conn: sa.Connection,
    model: type[LogDay] | type[LogHour],
    column: sa.orm.InstrumentedAttribute,
    route_ids: Sequence[int],
    since: datetime,
) -> dict[int, dict[datetime, Bucket]]:
    if not route_ids:
        return {}
    query = sa.select(model.route_id, column, *_rollup_columns(model)).where(
        model.route_id.in_(route_ids), column >= since
    )
    series: dict[int, dict[datetime, Bucket]] = {}
    for row in conn.execute(query):
        series.setdefault(row[0], {})[row[1]] = _bucket_from_row(row[1], row[2:])
    return series


def _uptime_since(
    conn: sa.Connection, route_ids: Sequence[int], since: datetime
) -> dict[int, float | None]:
    """Per route, uptime over the hour roll-ups since ``since``, summed by the database."""
    if not route_ids:
        return {}
    query = (
        sa.select(LogHour.route_id, sa.func.sum(LogHour.success), sa.func.sum(LogHour.failure))
        .where(LogHour.route_id.in_(route_ids), LogHour.hour >= since)
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


def _uptime(buckets: Iterable[Bucket]) -> float | None:
    """The uptime of the buckets together, as :attr:`Bucket.uptime` of their sum.

    Sums only the two counts uptime needs: summing whole buckets (histograms
    included) over 90 days x 3 windows was a third of the page's time.
    """
    success = failure = 0
    for bucket in buckets:
        success += bucket.success
        failure += bucket.failure
    return 100.0 * success / (success + failure) if success + failure else None


def route_statuses(
    state: StatusState,
    now: datetime | None = None,
    days: int = 90,
    minutes: int = 60,
    include_hidden: bool = False,
) -> list[RouteStatus]:
    """Every visible route with its status, uptimes, day and minute series.

    :param now: the moment to look from (default: now, UTC).
    :param days: length of the day series (default 90, the page's strip).
    :param minutes: length of the minute series (default 60).
    """
    state.route_ids()
    settings = state.settings
    now = (now or utcnow()).astimezone(timezone.utc)
    this_minute = floor_minute(now)
    today = floor_day(now)
    hour_start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    fetch_minutes = max(minutes, settings.status_window)
    minute_since = this_minute - timedelta(minutes=fetch_minutes - 1)
    longest = max(days, *(d for d in UPTIME_WINDOWS.values() if d))
    day_since = today - timedelta(days=longest - 1)

    with state.engine.connect() as conn:
        rows = visible_routes(conn, include_hidden)
        ids = [row.id for row in rows]
        by_minute = minute_series(conn, ids, minute_since)
        uptime_24h = _uptime_since(conn, ids, hour_start)
        by_day = _rollup_series(conn, LogDay, LogDay.day, ids, day_since)

    result = []
    window_since = this_minute - timedelta(minutes=settings.status_window - 1)
    for row in rows:
        # Minutes after `now` exist when looking at the past (or a host's clock is
        # ahead); they belong to no window seen from `now`.
        route_minutes = {m: b for m, b in by_minute.get(row.id, {}).items() if m <= this_minute}
        route_days = by_day.get(row.id, {})
        window = _sum(window_since, (b for m, b in route_minutes.items() if m >= window_since))
        minute_list = [
            route_minutes.get(start) or Bucket(start=start)
            for start in (this_minute - timedelta(minutes=n) for n in range(minutes - 1, -1, -1))
        ]
        day_list = [
            route_days.get(start) or Bucket(start=start)
            for start in (today - timedelta(days=n) for n in range(days - 1, -1, -1))
        ]
        uptime: dict[str, float | None] = {"24h": uptime_24h.get(row.id)}
        for label, length in UPTIME_WINDOWS.items():
            if length:
                since = today - timedelta(days=length - 1)
                uptime[label] = _uptime(b for d, b in route_days.items() if d >= since)
        last = max((m for m, b in route_minutes.items() if b.total), default=None)
        if last is None:
            last = max((d for d, b in route_days.items() if b.total), default=None)
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
                days=day_list,
                minutes=minute_list,
                last_data_at=last,
                updated_at=row.updated_at,
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
        series = _rollup_series(conn, LogDay, LogDay.day, route_ids, since)
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
    since = since or this_minute - timedelta(days=settings.minute_retention_days)
    failures = sa.func.sum(sa.case((Log.outcome == FAILURE, Log.count), else_=0))
    successes = sa.func.sum(sa.case((Log.outcome == SUCCESS, Log.count), else_=0))
    with state.engine.connect() as conn:
        routes = {row.id: row for row in visible_routes(conn, include_hidden)}
        if not routes:
            return []
        query = (
            sa.select(Log.route_id, Log.minute, failures, successes)
            .where(Log.minute >= since, Log.minute <= this_minute)
            .where(Log.route_id.in_(list(routes)))
            .group_by(Log.route_id, Log.minute)
            # Only failing minutes leave the database: failures / (failures +
            # successes) >= the threshold, multiplied out to stay in integers.
            .having(failures > 0)
            .having(failures >= (failures + successes) * settings.partial_outage_ratio)
            .order_by(Log.route_id, Log.minute)
        )
        failing = [
            (route_id, minute, int(fail), int(fail) + int(ok))
            for route_id, minute, fail, ok in conn.execute(query)
            if int(fail) / (int(fail) + int(ok)) >= settings.partial_outage_ratio
        ]

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
    recent = this_minute - timedelta(minutes=max(1, settings.incident_gap))
    for incident in found:
        incident.ongoing = incident.end > recent
    found.sort(key=lambda i: (i.start, i.route_id), reverse=True)
    return found[:limit] if limit is not None else found


def data_version(state: StatusState, now: datetime | None = None) -> tuple:
    """A cheap fingerprint of everything :func:`route_statuses` and :func:`incidents` read.

    Two small aggregates: the day roll-ups of the last 90 days (every write
    adds to them, a purge removes from them) and the route table (rows,
    hidden flags, positions, text lengths, latest change); with the current
    minute, since the windows move with it. Equal fingerprints at the same
    minute mean equal results, except for a rename to a text of the same
    length within the second of the previous change on a database that keeps
    whole seconds (MySQL): callers cache for a few seconds at most.
    """
    state.route_ids()
    now = (now or utcnow()).astimezone(timezone.utc)
    since = floor_day(now) - timedelta(days=89)
    with state.engine.connect() as conn:
        days = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(LogDay.total), 0),
                sa.func.coalesce(sa.func.sum(LogDay.failure), 0),
            ).where(LogDay.day >= since)
        ).one()
        routes = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.max(Route.updated_at),
                sa.func.coalesce(sa.func.sum(sa.case((Route.hidden == sa.true(), 1), else_=0)), 0),
                sa.func.coalesce(sa.func.sum(Route.position), 0),
                # A rename within the second of the last change (MySQL keeps whole
                # seconds) still changes this, unless the length stays the same.
                sa.func.coalesce(
                    sa.func.sum(sa.func.length(Route.name) + sa.func.length(Route.doc)), 0
                ),
            )
        ).one()
    return (floor_minute(now), *(int(v) for v in days), routes[0], routes[1], *map(int, routes[2:]))
