"""Reading the status data: windows, day and minute series, statuses, incidents.

One layer that the page, the JSON, the API and the admin share. Everything
here reads roll-ups or at most the last hour of minute rows (incidents read
failing minute rows only), so its cost grows with routes x days, not with
traffic.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from fractions import Fraction
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from . import verdicts
from .config import FAILURE, HISTOGRAM_SIZE, NEUTRAL, SUCCESS, Settings
from .models import HISTOGRAM_COLUMNS, UNMATCHED_RULE, Log, LogDay, LogHour, Route, percentile

# The statuses are the verdicts' own; they stay importable from here.
from .verdicts import DEGRADED as DEGRADED
from .verdicts import MAJOR_OUTAGE as MAJOR_OUTAGE
from .verdicts import NO_DATA as NO_DATA
from .verdicts import OPERATIONAL as OPERATIONAL
from .verdicts import PARTIAL_OUTAGE as PARTIAL_OUTAGE
from .verdicts import REACH_BACK_LIMIT, Slo
from .verdicts import STATUSES as STATUSES

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .state import StatusState

    #: A SELECT of any columns (SQLAlchemy 2.1 types a Select by its columns' types).
    AnySelect = sa.Select[Unpack[tuple[Any, ...]]]

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
    def p50(self) -> float | None:
        """Estimated median latency in milliseconds."""
        return percentile(self.histogram, 0.5, self.latency_max)

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
    #: The recent window the status was computed from: the status window, or
    #: more minutes when it held too few classified requests (see
    #: :func:`.verdicts.reach_back`); ``window.start`` is its first minute.
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
    #: Minutes the status window spans (including the current one).
    window_minutes: int = 0
    #: The p95 threshold (ms) the status was judged against; None: off.
    latency_threshold_ms: float | None = None
    #: Whether the window's p95 is over that threshold (on enough requests).
    latency_breach: bool = False
    #: Error budget and burn rates, when an objective is set.
    slo: Slo | None = None
    #: The route's own failure codes (sorted), replacing ``FLASK_STATUS_FAILURE_CODES``
    #: for counts written since they were set; None: the global set.
    failure_codes: list[int] | None = None

    @property
    def basis(self) -> dict[str, int]:
        """What the status is based on, for ``"last 5 min, 1,204 requests"``:
        the window's minutes and classified requests."""
        return {"minutes": self.window_minutes, "requests": self.window.classified}

    @property
    def latency(self) -> dict[str, float | None]:
        """The window's latency as ``summary.json`` gives it (milliseconds, rounded)."""
        p50, p95 = self.window.p50, self.window.p95
        return {
            "p50_ms": None if p50 is None else round(p50, 1),
            "p95_ms": None if p95 is None else round(p95, 1),
            "threshold_ms": self.latency_threshold_ms,
        }


@dataclass
class Incident:
    """An outage of one route, from its first to its last failing minute."""

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
    """The status a bucket's counts give: its failure ratio against the configured
    thresholds, never worse than ``degraded_performance`` on fewer than
    ``FLASK_STATUS_MIN_REQUESTS`` classified requests (see :func:`.verdicts.judge`)."""
    return verdicts.judge(bucket.failure, bucket.classified, settings)


def overall_status(statuses: Iterable[str]) -> str:
    """The worst status among routes; ``no_data`` only if no route has data."""
    return max(statuses, key=STATUSES.index, default=NO_DATA)


def _rollup_columns(model: type[LogDay] | type[LogHour]) -> list[sa.ColumnElement[Any]]:
    return [
        model.total,
        model.success,
        model.failure,
        model.neutral,
        model.latency_sum,
        model.latency_max,
        *(getattr(model, c) for c in HISTOGRAM_COLUMNS),
    ]


def _bucket_from_rollup(start: datetime, row: Sequence[Any]) -> Bucket:
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


def _bucket_from_row(start: datetime, row: Sequence[Any]) -> Bucket:
    """A roll-up row's columns as they are: integers already, no sums to convert."""
    return Bucket(start, row[0], row[1], row[2], row[3], row[4], row[5], list(row[6:]))


@functools.cache
def _routes_query(include_hidden: bool) -> AnySelect:
    # Built once: building a statement costs more than running it on a small table.
    query = sa.select(Route.__table__).where(Route.rule != UNMATCHED_RULE)
    if not include_hidden:
        query = query.where(Route.hidden == sa.false())
    return query.order_by(Route.position, Route.id)


def visible_routes(
    conn: sa.Connection, include_hidden: bool = False, only: Collection[str] | None = None
) -> list[sa.Row[Any]]:
    """Route rows in page order, without the unmatched row.

    :param only: the app's ``routes=`` list, if any: other apps sharing the
        database have rows of their own, which this app does not show. Compared
        in Python, exactly (MariaDB's collation would not tell ``/A`` from ``/a``).
    """
    rows = list(conn.execute(_routes_query(include_hidden)))
    if only is not None:
        rows = [row for row in rows if row.rule in only]
    return rows


@functools.cache
def _minute_query() -> AnySelect:
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
def _day_query() -> AnySelect:
    return sa.select(LogDay.route_id, LogDay.day, *_rollup_columns(LogDay))


def day_series(
    conn: sa.Connection, *where: sa.ColumnElement[bool]
) -> dict[int, dict[datetime, Bucket]]:
    """Per route, per UTC day: the day roll-ups that match ``where``."""
    series: dict[int, dict[datetime, Bucket]] = {}
    for row in conn.execute(_day_query().where(*where)):
        series.setdefault(row[0], {})[row[1]] = _bucket_from_row(row[1], row[2:])
    return series


#: Per route: (successes, failures) over the last 24 hours, then over the last 6.
RecentCounts = tuple[int, int, int, int]

#: Hours of hour roll-ups behind the 6-hour burn rate (the current one included).
BURN_HOURS = 6


@functools.cache
def _recent_query() -> AnySelect:
    last_6h = LogHour.hour >= sa.bindparam("six")
    return (
        sa.select(
            LogHour.route_id,
            sa.func.sum(LogHour.success),
            sa.func.sum(LogHour.failure),
            sa.func.sum(sa.case((last_6h, LogHour.success), else_=0)),
            sa.func.sum(sa.case((last_6h, LogHour.failure), else_=0)),
        )
        .where(
            LogHour.route_id.in_(sa.bindparam("ids", expanding=True)),
            LogHour.hour >= sa.bindparam("lo"),
            LogHour.hour <= sa.bindparam("hi"),
        )
        .group_by(LogHour.route_id)
    )


def recent_counts(
    conn: sa.Connection, route_ids: Sequence[int], now: datetime
) -> dict[int, RecentCounts]:
    """Per route, (successes, failures) over the hour roll-ups of the 24 hours up to
    ``now``, and of the :data:`BURN_HOURS` hours up to it (the current one included).

    The 24 h uptime and the 6-hour burn rate come from here; a route missing
    from the answer has no requests in the last 24 hours.
    """
    if not route_ids:
        return {}
    this_hour = floor_hour(now)
    params = {
        "ids": list(route_ids),
        "lo": this_hour - timedelta(hours=23),
        "hi": this_hour,
        "six": this_hour - timedelta(hours=BURN_HOURS - 1),
    }
    return {
        row[0]: (int(row[1] or 0), int(row[2] or 0), int(row[3] or 0), int(row[4] or 0))
        for row in conn.execute(_recent_query(), params)
    }


def last_minutes(conn: sa.Connection, route_ids: Sequence[int]) -> dict[int, datetime]:
    """Per route, the newest minute that has a minute row (within the minute retention).

    For the page's "last data" of routes quiet for more than the hour its minute
    strip shows; a route missing from the answer has no minute rows left.
    """
    if not route_ids:
        return {}
    query = (
        sa.select(Log.route_id, sa.func.max(Log.minute))
        .where(Log.route_id.in_(route_ids))
        .group_by(Log.route_id)
    )
    return {route_id: minute for route_id, minute in conn.execute(query) if minute is not None}


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
    minute_since = this_minute - timedelta(minutes=minute_span(settings, minutes) - 1)
    day_since = today - timedelta(days=max(days, DAY_SPAN) - 1)

    with state.engine.connect() as conn:
        rows = visible_routes(conn, include_hidden, _only(state))
        ids = [row.id for row in rows]
        by_minute = minute_series(
            conn, Log.route_id.in_(ids), Log.minute >= minute_since, Log.minute <= this_minute
        )
        recent = recent_counts(conn, ids, now)
        by_day = day_series(
            conn, LogDay.route_id.in_(ids), LogDay.day >= day_since, LogDay.day <= today
        )
    return assemble_statuses(rows, by_minute, by_day, recent, now, settings, days, minutes)


def minute_span(settings: Settings, minutes: int = 60) -> int:
    """Minutes of minute buckets a status needs: the series shown, the status
    window, and the furthest it may reach back."""
    return max(minutes, settings.status_window, REACH_BACK_LIMIT)


def assemble_statuses(
    rows: Sequence[sa.Row[Any]],
    by_minute: Mapping[int, Mapping[datetime, Bucket]],
    by_day: Mapping[int, Mapping[datetime, Bucket]],
    recent: Mapping[int, RecentCounts],
    now: datetime,
    settings: Settings,
    days: int = 90,
    minutes: int = 60,
) -> list[RouteStatus]:
    """Routes as the page shows them, from their buckets per minute and per day.

    Looks buckets up by start, so the mappings may hold more than the windows
    (the snapshot reader keeps buckets across calls); a bucket missing from
    them is an empty one.

    :param recent: per route, the counts of the last 24 and 6 hours
        (:func:`recent_counts`).
    """
    this_minute = floor_minute(now)
    today = floor_day(now)
    fetched = minute_span(settings, minutes)
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
        counts = _window_counts(day_list)
        success_24h, failure_24h, success_6h, failure_6h = recent.get(row.id, (0, 0, 0, 0))
        total_24h = success_24h + failure_24h
        uptime: dict[str, float | None] = {
            "24h": 100.0 * success_24h / total_24h if total_24h else None
        }
        for label, (success, failure) in counts.items():
            uptime[label] = 100.0 * success / (success + failure) if success + failure else None
        last = next((b.start for b in reversed(minute_list) if b.total), None)
        if last is None:
            last = next((b.start for b in reversed(day_list) if b.total), None)
        # The route's own threshold and objective (admin, API, CLI), else the global ones.
        judged = judge_route(minute_list, settings, row.latency_threshold_ms)
        target = settings.slo_target if row.slo_target is None else row.slo_target
        slo = None
        if target is not None:
            slo = slo_of(day_list, minute_list, (success_6h, failure_6h), target, settings)
        result.append(
            RouteStatus(
                id=row.id,
                rule=row.rule,
                endpoint=row.endpoint,
                name=row.name,
                doc=row.doc,
                hidden=bool(row.hidden),
                position=row.position,
                status=judged.status,
                window=judged.window,
                uptime=uptime,
                days=day_list[-days:],
                minutes=minute_list[-minutes:],
                last_data_at=last,
                updated_at=row.updated_at,
                window_counts=counts,
                window_minutes=judged.minutes,
                latency_threshold_ms=judged.threshold_ms,
                latency_breach=judged.latency_breach,
                slo=slo,
                failure_codes=row.failure_codes,
            )
        )
    return result


@dataclass(frozen=True, slots=True)
class Judged:
    """A route's current verdict and what it is based on."""

    status: str
    window: Bucket
    minutes: int
    threshold_ms: float | None
    latency_breach: bool


def judge_route(
    minute_list: Sequence[Bucket],
    settings: Settings,
    latency_threshold_ms: float | None = None,
    min_requests: int | None = None,
) -> Judged:
    """A route's status from its minute buckets (oldest first, the last the current minute).

    The window is the status window, reaching back minute by minute (up to
    60) until it holds ``min_requests`` classified requests; the ratio
    verdict on fewer is never worse than ``degraded_performance``; a p95 over
    the latency threshold on enough requests makes it at least that.

    :param latency_threshold_ms: the route's own threshold; None: the global one.
    :param min_requests: the route's own sample size; None: the global one.
    """
    needed = settings.min_requests if min_requests is None else min_requests
    threshold = (
        settings.latency_threshold_ms if latency_threshold_ms is None else latency_threshold_ms
    )
    length = verdicts.reach_back(
        [b.classified for b in minute_list], settings.status_window, needed
    )
    window = _sum(minute_list[-length].start, minute_list[-length:])
    status = verdicts.judge(window.failure, window.classified, settings, needed)
    breach = verdicts.latency_breached(window.p95, window.total, threshold, needed)
    if breach:
        status = verdicts.worst(status, DEGRADED)
    return Judged(status, window, length, threshold, breach)


def slo_of(
    day_list: Sequence[Bucket],
    minute_list: Sequence[Bucket],
    last_6h: tuple[int, int],
    target: float,
    settings: Settings,
) -> Slo:
    """A route's error budget over the last ``FLASK_STATUS_SLO_WINDOW_DAYS`` UTC days
    (today included), its burn rate over the last 60 minutes and over ``last_6h``.

    :param target: the route's or the global objective, in percent.
    """
    days = day_list[-settings.slo_window_days :]
    hour = minute_list[-60:]
    return verdicts.slo_figures(
        target,
        settings.slo_window_days,
        (sum(b.success for b in days), sum(b.failure for b in days)),
        (sum(b.success for b in hour), sum(b.failure for b in hour)),
        last_6h,
    )


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
    """Incidents per route, newest first, as :func:`.verdicts.find_outages` finds them.

    A minute fails when its failure ratio reaches ``FLASK_STATUS_PARTIAL_OUTAGE_RATIO``
    with at least ``FLASK_STATUS_INCIDENT_MIN_FAILURES`` failures; an incident
    opens after ``FLASK_STATUS_INCIDENT_OPEN_MINUTES`` failing minutes in a row
    and closes after ``FLASK_STATUS_INCIDENT_CLOSE_MINUTES`` minutes with
    traffic and no failing minute; until then it is ongoing.

    :param since: oldest minute to consider (default: the minute retention).
    """
    settings = state.settings
    state.route_ids()
    now = (now or utcnow()).astimezone(timezone.utc)
    this_minute = floor_minute(now)
    since = since or incident_since(now, settings)
    with state.engine.connect() as conn:
        routes = {row.id: row for row in visible_routes(conn, include_hidden, _only(state))}
        if not routes:
            return []
        failing = failing_minutes(
            conn,
            settings,
            Log.minute >= since,
            Log.minute <= this_minute,
            Log.route_id.in_(list(routes)),
        )
        traffic = TrafficCounter(conn, settings.incident_close_minutes)
        found = detect_incidents(failing, routes, this_minute, settings, traffic)
    return finish_incidents(found, limit)


def _only(state: StatusState) -> frozenset[str] | None:
    """The app's ``routes=`` list as a set, or None when every route is shown."""
    return frozenset(state.routes) if state.routes is not None else None


def incident_since(now: datetime, settings: Settings) -> datetime:
    """The oldest minute incidents are looked for in: the minute retention."""
    return floor_minute(now) - timedelta(days=settings.minute_retention_days)


def is_failing(failures: int, successes: int, settings: Settings) -> bool:
    """Whether a minute with these counts fails (see :func:`.verdicts.is_failing`)."""
    return verdicts.is_failing(
        failures, successes, settings.partial_outage_ratio, settings.incident_min_failures
    )


#: One failing minute: route id, minute, failures, classified requests.
FailingMinute = tuple[int, datetime, int, int]


def failing_minutes(
    conn: sa.Connection, settings: Settings, *where: sa.ColumnElement[bool]
) -> list[FailingMinute]:
    """The failing minutes among the minute rows that match ``where``, by route and minute."""
    failures = sa.func.sum(sa.case((Log.outcome == FAILURE, Log.count), else_=0))
    successes = sa.func.sum(sa.case((Log.outcome == SUCCESS, Log.count), else_=0))
    ratio = settings.partial_outage_ratio
    # Only (nearly) failing minutes leave the database: the ratio as a fraction,
    # multiplied out to stay in exact integers; is_failing() has the last word.
    num, den = Fraction(str(ratio)).limit_denominator(1_000_000).as_integer_ratio()
    query = (
        sa.select(Log.route_id, Log.minute, failures, successes)
        .where(*where)
        .group_by(Log.route_id, Log.minute)
        .having(failures >= max(1, settings.incident_min_failures))
        .having(failures * den >= (failures + successes) * num)
        .order_by(Log.route_id, Log.minute)
    )
    found = []
    for route_id, minute, fail, ok in conn.execute(query):
        fail, ok = int(fail), int(ok)
        if is_failing(fail, ok, settings):
            found.append((route_id, minute, fail, fail + ok))
    return found


@functools.cache
def _traffic_query(cap: int) -> AnySelect:
    # Distinct minutes with a classified request, and no more than `cap` of
    # them: the index on (route_id, minute, status) lets the database stop early.
    minutes = (
        sa.select(Log.minute)
        .where(
            Log.route_id == sa.bindparam("route"),
            Log.minute > sa.bindparam("after"),
            Log.minute < sa.bindparam("before"),
            Log.outcome.in_((SUCCESS, FAILURE)),
        )
        .distinct()
        .limit(cap)
        .subquery()
    )
    return sa.select(sa.func.count()).select_from(minutes)


def traffic_minutes(
    conn: sa.Connection, route_id: int, after: datetime, before: datetime, cap: int
) -> int:
    """Minutes strictly between ``after`` and ``before`` in which ``route_id`` had a
    classified request, counted up to ``cap``."""
    if before - after <= timedelta(minutes=1):
        return 0
    params = {"route": route_id, "after": after, "before": before}
    return int(conn.execute(_traffic_query(cap), params).scalar() or 0)


class TrafficCounter:
    """:func:`traffic_minutes` of one connection, each gap asked once."""

    def __init__(self, conn: sa.Connection, cap: int) -> None:
        self.conn = conn
        self.cap = cap
        self.answers: dict[tuple[int, datetime, datetime], int] = {}

    def __call__(self, route_id: int, after: datetime, before: datetime) -> int:
        key = (route_id, after, before)
        if key not in self.answers:
            self.answers[key] = traffic_minutes(self.conn, route_id, after, before, self.cap)
        return self.answers[key]


def detect_incidents(
    failing: Iterable[FailingMinute],
    routes: Mapping[int, sa.Row[Any]],
    now: datetime,
    settings: Settings,
    traffic: Callable[[int, datetime, datetime], int],
) -> list[Incident]:
    """Incidents of failing minutes sorted by route and minute, route after route.

    :param now: the current minute: an incident not closed by then is ongoing.
    :param traffic: minutes with classified traffic of a route strictly
        between two minute starts (:func:`traffic_minutes`).
    """
    by_route: dict[int, list[tuple[datetime, int, int]]] = {}
    for route_id, minute, fail, classified in failing:
        by_route.setdefault(route_id, []).append((minute, fail, classified))
    found: list[Incident] = []
    for route_id, minutes in by_route.items():
        route = routes[route_id]
        outages = verdicts.find_outages(
            minutes,
            functools.partial(traffic, route_id),
            now,
            settings.incident_open_minutes,
            settings.incident_close_minutes,
        )
        found.extend(
            Incident(
                route_id=route_id,
                route_name=route.name,
                rule=route.rule,
                start=outage.start,
                end=outage.end,
                ongoing=outage.ongoing,
                failures=outage.failures,
                requests=outage.requests,
                peak_ratio=outage.peak_ratio,
            )
            for outage in outages
        )
    return found


def finish_incidents(found: list[Incident], limit: int | None = None) -> list[Incident]:
    """``found`` newest first, at most ``limit``."""
    found.sort(key=lambda i: (i.start, i.route_id), reverse=True)
    return found[:limit] if limit is not None else found
