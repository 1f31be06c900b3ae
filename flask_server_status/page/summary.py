"""The page's JSON: ``summary.json`` (DESIGN.md's public shape) and ``updates.json``.

One encoder, :func:`encode`, writes both. ``summary.json`` keeps the field
names of Atlassian Statuspage's public ``summary.json`` so tools that read
those pages read ours. ``updates.json`` is the page's own refresh: the
figures that change every minute, and the buckets that changed since the
minute the page already has, as compact ``[total, failure, neutral, p95, p50]``
arrays (success = total - failure - neutral), so an open page fetches a few
kilobytes a minute instead of the whole history.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from collections.abc import Callable, Hashable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .. import queries
from ..format import iso
from ..queries import (
    DEGRADED,
    MAJOR_OUTAGE,
    NO_DATA,
    OPERATIONAL,
    PARTIAL_OUTAGE,
    Bucket,
    Incident,
    RouteStatus,
)

if TYPE_CHECKING:
    from ..config import Settings
    from ..snapshots import Snapshot
    from .memo import StripRun

#: Statuspage's ``status.indicator`` for our overall status.
INDICATORS = {
    OPERATIONAL: "none",
    NO_DATA: "none",
    DEGRADED: "minor",
    PARTIAL_OUTAGE: "major",
    MAJOR_OUTAGE: "critical",
}
#: Incidents on the page and in summary.json; the Atom feed has all a snapshot keeps.
INCIDENT_LIMIT = 10


def encode(document: Any) -> str:
    """The one JSON encoder of the page's answers: compact, unsorted, UTF-8.

    The stdlib encoder rather than ``app.json``: the host's JSON settings are
    the host's (DESIGN.md), and these answers must not change with them.
    Documents are trees built here (series lists are shared between answers,
    never nested in themselves), so the check for cycles is skipped.
    """
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, check_circular=False)


def banner_key(overall: str) -> str:
    """The i18n key of the banner text for the overall status."""
    if overall == NO_DATA:
        return "banner_no_data"
    return f"banner_{INDICATORS[overall]}"


def incident_impact(incident: Incident, settings: Settings) -> str:
    """Statuspage's ``impact`` from the worst minute of the incident."""
    if incident.peak_ratio >= settings.major_outage_ratio:
        return "critical"
    if incident.peak_ratio >= settings.partial_outage_ratio:
        return "major"
    return "minor"


def _percent(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _ms(value: float | None) -> float | None:
    """A latency in milliseconds to 0.1 ms (the histogram's estimate is no finer)."""
    return None if value is None else round(value, 1)


def _series_entry(bucket: Bucket, key: str, stamp: str | None) -> dict[str, Any]:
    empty = not bucket.total
    return {
        key: stamp,
        "total": bucket.total,
        "success": bucket.success,
        "failure": bucket.failure,
        "uptime": _percent(bucket.uptime),
        "p50_ms": None if empty else _ms(bucket.p50),
        "p95_ms": None if empty else _ms(bucket.p95),
    }


def _day_entry(bucket: Bucket) -> dict[str, Any]:
    return _series_entry(bucket, "date", (iso(bucket.start) or "")[:10])


def _minute_entry(bucket: Bucket) -> dict[str, Any]:
    return _series_entry(bucket, "minute", iso(bucket.start))


def verdict_fields(route: RouteStatus) -> dict[str, Any]:
    """What a component's status is based on, as DESIGN.md gives it in ``summary.json``:
    ``window`` (minutes, classified requests), ``latency`` (p50, p95, threshold) and,
    when an objective is set, ``slo``. :func:`compact_verdict` is the refresh's form."""
    fields: dict[str, Any] = {"window": route.basis, "latency": route.latency}
    if route.slo is not None:
        fields["slo"] = route.slo.to_dict()
    return fields


#: Decimals of the SLO's fractions in ``updates.json``: the page shows a budget to
#: 0.1 % and a rate to 0.01; 6 decimals keep a 99.996 % budget from reading as 100 %.
REFRESH_PLACES = 6


def compact_verdict(route: RouteStatus) -> dict[str, Any]:
    """The figures of :func:`verdict_fields` as the refresh sends them, in arrays.

    ``window``: ``[minutes, successes, failures]`` (the requests are their sum);
    ``latency``: ``[p50 ms, p95 ms, threshold ms, over the threshold 0/1]``;
    ``slo`` (with an objective): ``[budget left, burn rate 1 h, burn rate 6 h,
    page someone 0/1]``. Field names on 50 routes would be a third of a
    minute's refresh (issue 16's 30 KB); the judgements (over the threshold,
    page someone) are the server's, so the page never re-decides them.
    """
    window, latency = route.window, route.latency
    fields: dict[str, Any] = {
        "window": [route.window_minutes, window.success, window.failure],
        "latency": [
            latency["p50_ms"],
            latency["p95_ms"],
            latency["threshold_ms"],
            int(route.latency_breach),
        ],
    }
    slo = route.slo
    if slo is not None:

        def fraction(value: float | None) -> float | None:
            return None if value is None else round(value, REFRESH_PLACES)

        fields["slo"] = [
            fraction(slo.budget_remaining),
            fraction(slo.burn_rate_1h),
            fraction(slo.burn_rate_6h),
            int(slo.paging),
        ]
    return fields


def _incidents(
    snapshot: Snapshot, settings: Settings, t: Mapping[str, str]
) -> list[dict[str, Any]]:
    return [
        {
            "id": incident.id,
            "name": t["incident_name"].format(name=incident.route_name),
            "status": "investigating" if incident.ongoing else "resolved",
            "impact": incident_impact(incident, settings),
            "created_at": iso(incident.start),
            "started_at": iso(incident.start),
            "resolved_at": None if incident.ongoing else iso(incident.end),
            "component_ids": [str(incident.route_id)],
            "failures": incident.failures,
        }
        for incident in snapshot.incidents[:INCIDENT_LIMIT]
    ]


def summary_text(
    snapshot: Snapshot,
    settings: Settings,
    t: Mapping[str, str],
    title: str,
    page_url: str,
    run: StripRun[str] | None = None,
) -> str:
    """The ``summary.json`` text of a snapshot (DESIGN.md's shape), written by :func:`encode`.

    Every part is encoded by :func:`encode`; a component's ``days`` and ``minutes``
    are encoded per strip, so a strip whose buckets are the previous answer's is
    not encoded again, nor a component whose route status is the previous one
    (:mod:`.memo`). :func:`build_summary` reads this text back:
    there is one way to write ``summary.json``.

    :param t: the texts of the answer's language (:func:`.i18n.texts`).
    :param title: the page's name.
    :param page_url: the page's address: absolute from ``FLASK_STATUS_PUBLIC_URL``,
        else relative (never from the request's ``Host``).
    :param run: the previous answer's encoded components and strips.
    """

    def series(key: Hashable, buckets: list[Bucket], make: Callable[[Bucket], Any]) -> str:
        def encoded() -> str:
            return encode([make(b) for b in buckets])

        return encoded() if run is None else run.strip(key, buckets, encoded)

    page = {
        "name": title,
        "url": page_url,
        # The data changes once a minute; the minute keeps the ETag stable.
        "updated_at": iso(queries.floor_minute(snapshot.now)),
    }
    status = {
        "indicator": INDICATORS[snapshot.overall],
        "description": t[banner_key(snapshot.overall)],
    }

    def component(route: RouteStatus) -> str:
        head = encode(
            {
                "id": str(route.id),
                "name": route.name,
                "rule": route.rule,
                "description": route.doc,
                "position": route.position,
                "status": route.status,
                "updated_at": iso(route.last_data_at),
                "uptime": {k: _percent(v) for k, v in route.uptime.items()},
                **verdict_fields(route),
            }
        )
        # The object without its closing brace, then the two series.
        days = series(("days", route.id), route.days, _day_entry)
        minutes = series(("minutes", route.id), route.minutes, _minute_entry)
        return f'{head[:-1]},"days":{days},"minutes":{minutes}}}'

    components = []
    for route in snapshot.routes:
        if run is None:
            components.append(component(route))
            continue
        # A component is its route's status alone, in no language: the same status
        # (the reader keeps an unchanged one), the same text.
        components.append(
            run.reuse(
                ("component", route.id),
                route,
                functools.partial(component, route),
                carry=(("days", route.id), ("minutes", route.id)),
            )
        )
    return (
        f'{{"page":{encode(page)},"status":{encode(status)},'
        f'"components":[{",".join(components)}],'
        f'"incidents":{encode(_incidents(snapshot, settings, t))}}}'
    )


def build_summary(
    snapshot: Snapshot,
    settings: Settings,
    t: Mapping[str, str],
    title: str,
    page_url: str,
) -> dict[str, Any]:
    """The ``summary.json`` document of a snapshot, as :func:`summary_text` writes it."""
    document: dict[str, Any] = json.loads(summary_text(snapshot, settings, t, title, page_url))
    return document


# -- updates.json: the page's own refresh -------------------------------------------


def compact(bucket: Bucket) -> list[int | None] | int:
    """A bucket as ``[total, failure, neutral, p95 ms, p50 ms]``; ``0`` for an empty one.

    Latencies are whole milliseconds, rounded up (a tooltip never reads faster
    than measured): the refresh stays a few kilobytes.
    """
    if not bucket.total:
        return 0
    p95, p50 = bucket.p95, bucket.p50
    return [
        bucket.total,
        bucket.failure,
        bucket.neutral,
        None if p95 is None else math.ceil(p95),
        None if p50 is None else math.ceil(p50),
    ]


def routes_key(routes: list[RouteStatus]) -> str:
    """A short digest of the rows the page shows: it reloads when this changes."""
    # An objective set or removed adds or drops a row's budget bar: reload too.
    text = encode([[r.id, r.name, r.rule, r.doc, r.position, r.slo is not None] for r in routes])
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def parse_since(value: str | None) -> datetime | None:
    """The ``since`` query parameter (an ISO minute with ``Z``), or None if absent or bad."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return queries.floor_minute(moment)


def late_minutes(settings: Settings) -> int:
    """How far back a flush may still change minutes: the flush interval, rounded up, + 2.

    Every process writes what it counted at least once per flush interval, so a
    minute older than this no longer changes (short of a database outage,
    which the next page load shows).
    """
    return math.ceil(settings.flush_interval / 60) + 2


def build_updates(
    snapshot: Snapshot,
    settings: Settings,
    t: Mapping[str, str],
    since: datetime | None,
) -> dict[str, Any]:
    """What changed since the minute ``since`` the page has; everything when None.

    Per route: status, uptimes, the counts behind them, last data, and the day
    and minute buckets from ``days.from`` / ``minutes.from`` to now, oldest
    first. ``full`` says whether the series are whole (90 days, 60 minutes).
    """
    now = queries.floor_minute(snapshot.now)
    first_minute = now - timedelta(minutes=59)
    first_day = queries.floor_day(now) - timedelta(days=queries.DAY_SPAN - 1)
    full = (
        since is None
        or since > now
        or since - timedelta(minutes=late_minutes(settings)) < first_minute
    )
    if full:
        minute_from, day_from = first_minute, first_day
    else:
        assert since is not None
        minute_from = since - timedelta(minutes=late_minutes(settings))
        day_from = queries.floor_day(minute_from)
    components = []
    for route in snapshot.routes:
        components.append(
            {
                "id": str(route.id),
                "status": route.status,
                "uptime": {k: _percent(v) for k, v in route.uptime.items()},
                "counts": {k: list(v) for k, v in route.window_counts.items()},
                **compact_verdict(route),
                "last": iso(route.last_data_at),
                "days": [compact(b) for b in route.days if b.start >= day_from],
                "minutes": [compact(b) for b in route.minutes if b.start >= minute_from],
            }
        )
    return {
        "now": iso(now),
        "full": full,
        "days_from": day_from.strftime("%Y-%m-%d"),
        "minutes_from": iso(minute_from),
        "routes": routes_key(snapshot.routes),
        "indicator": INDICATORS[snapshot.overall],
        "overall": snapshot.overall,
        "description": t[banner_key(snapshot.overall)],
        "components": components,
        "incidents": _incidents(snapshot, settings, t),
    }
