"""HTML of the status page: squares, rows, human times and the texts from the config.

The strips are the page's hot loop (150 squares a route) and its weight, so a
square is a bare ``<i class="sq o"></i>``: its colour class and nothing else.
The numbers behind a square reach the reader three ways:

* the newest square of each strip (today, this minute) carries them in its
  ``title``, so the figures people look at most work without JavaScript;
* every square's tooltip is built by ``status.js`` from the compact series of
  ``updates.json``, which the page's refresh fetches anyway;
* the route's name links to its details page (``/routes/<id>``), a table of
  every day and minute, which needs no JavaScript at all.

Nothing here touches the request: :func:`page_context` takes the snapshot, the
settings and the texts, so a test can render a page at a chosen minute.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from datetime import datetime
from typing import Any

from markupsafe import Markup, escape

from .. import format, i18n, queries
from ..config import Settings
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
from ..snapshots import Snapshot
from ..verdicts import PAGE_BURN_RATE, Slo
from .memo import StripRun
from .summary import INCIDENT_LIMIT, banner_key

#: CSS classes of the banner, pills and legend.
STATUS_CLASSES = {
    OPERATIONAL: "s-op",
    DEGRADED: "s-dg",
    PARTIAL_OUTAGE: "s-po",
    MAJOR_OUTAGE: "s-mo",
    NO_DATA: "s-nd",
}
#: One-letter classes of the squares: 7,500 of them on a page of 50 routes.
SQUARE_CLASSES = {
    OPERATIONAL: "o",
    DEGRADED: "d",
    PARTIAL_OUTAGE: "p",
    MAJOR_OUTAGE: "m",
    NO_DATA: "n",
}
#: Every status, in the legend's order.
LEGEND = (OPERATIONAL, DEGRADED, PARTIAL_OUTAGE, MAJOR_OUTAGE, NO_DATA)


# -- texts written from the configuration in force ----------------------------------------


def failed_codes_text(settings: Settings, t: Mapping[str, str]) -> str:
    """ "5xx and 404" (or whatever ``FLASK_STATUS_FAILURE_CODES`` says) in the page's words."""
    return codes_text(settings.failure_codes, t)


def codes_text(failure_codes: Collection[int], t: Mapping[str, str]) -> str:
    """ "5xx and 404, 429" for failure codes besides the 5xx; "every 5xx" for none."""
    codes = ", ".join(str(code) for code in sorted(failure_codes))
    if not codes:
        return t["failed_5xx"]
    return t["failed_5xx_and"].format(codes=codes)


def own_codes_text(route: RouteStatus, settings: Settings, t: Mapping[str, str]) -> str | None:
    """ "failures here: 5xx and 404, 429" for a route whose own failure codes differ from
    ``FLASK_STATUS_FAILURE_CODES`` (the footer states the global set); None otherwise.

    Shown on the row, beside the verdict it changes, so a reader comparing two routes'
    uptimes knows they do not count the same answers as failures.
    """
    own = route.failure_codes
    if own is None or set(own) == set(settings.failure_codes):
        return None
    return t["failures_here"].format(failed=codes_text(own, t))


def outcome_help(settings: Settings) -> str:
    """The admin's help for a bucket's outcome, from the settings in force (the admin
    speaks English): ``"success: 1xx-3xx; failure: 5xx and 404; neutral: other 4xx."``
    and how a 404 from a rule with URL variables counts."""
    t = i18n.texts(i18n.DEFAULT_LANGUAGE)
    text = f"success: 1xx-3xx; failure: {failed_codes_text(settings, t)}; neutral: other 4xx."
    if 404 in settings.failure_codes and settings.variable_rule_404 != "failure":
        text += " A 404 from a rule with URL variables (/items/<int:id>) is neutral."
    return text


def formula(settings: Settings, t: Mapping[str, str]) -> str:
    """The footer's explanation of uptime and statuses, from the configuration in force."""
    parts = [
        t["formula"].format(
            failed=failed_codes_text(settings, t),
            window=settings.status_window,
            min=settings.min_requests,
            degraded=f"{settings.degraded_ratio * 100:g}",
            partial=f"{settings.partial_outage_ratio * 100:g}",
            major=f"{settings.major_outage_ratio * 100:g}",
        ),
    ]
    # The global settings; a route's own failure codes, threshold or objective show on
    # its row.
    if settings.latency_threshold_ms is not None:
        threshold = format.milliseconds(settings.latency_threshold_ms)
        parts.append(t["formula_latency"].format(threshold=threshold))
    if settings.slo_target is not None:
        parts.append(
            t["formula_slo"].format(
                target=f"{settings.slo_target:g}", days=settings.slo_window_days
            )
        )
    return " ".join(parts)


# -- squares ---------------------------------------------------------------------------------


def tooltip(label: str, bucket: Bucket, status: str, t: Mapping[str, str]) -> str:
    """A square's numbers as lines of text (``status.js`` writes the same lines)."""
    lines = [
        f"{label} · {t[status]}",
        f"{t['requests']}: {format.count(bucket.total)}",
        f"{t['failures']}: {format.count(bucket.failure)}",
        f"{t['uptime']}: {format.percent(bucket.uptime)}",
    ]
    if bucket.total:
        # Whole milliseconds rounded up, as the refresh sends them (summary.compact).
        for key, value in (("p50", bucket.p50), ("p95", bucket.p95)):
            if value is not None:
                lines.append(f"{t[key]}: {format.milliseconds(value)}")
    return "\n".join(lines)


def bucket_label(bucket: Bucket, kind: str) -> str:
    """A day as ``2026-12-01 UTC``, a minute as ``2026-12-01 00:51 UTC``."""
    return format.utc_date(bucket.start) if kind == "day" else format.utc_time(bucket.start)


def squares(
    buckets: Sequence[Bucket],
    kind: str,
    settings: Settings,
    t: Mapping[str, str],
    run: StripRun[Markup] | None = None,
    key: Hashable = None,
) -> Markup:
    """One strip of squares, as HTML built here rather than in Jinja: the hot loop.

    Only the newest square has a tab stop (roving tabindex: the arrow keys move
    inside the strip) and a ``title`` with its numbers.

    :param run: the previous answer's strips (:mod:`.memo`), under ``key``.
    """
    if run is not None:
        return run.strip(key, buckets, lambda: squares(buckets, kind, settings, t))
    classes = SQUARE_CLASSES
    parts = [
        f'<i class="sq {classes[queries.status_of(bucket, settings)]}"></i>'
        for bucket in buckets[:-1]
    ]
    if buckets:
        last = buckets[-1]
        status = queries.status_of(last, settings)
        # Only numbers, dates and our own texts go into the title, escaped anyway.
        tip = str(escape(tooltip(bucket_label(last, kind), last, status, t))).replace("\n", "&#10;")
        parts.append(
            f'<i class="sq {SQUARE_CLASSES[status]}" tabindex="0" role="img"'
            f' title="{tip}"></i>'  # the title is its accessible name too
        )
    return Markup("".join(parts))


# -- rows ----------------------------------------------------------------------------------


def breakable_rule(rule: str) -> Markup:
    """The rule with a ``<wbr>`` after each slash: it wraps there and nowhere else."""
    return Markup("/<wbr>").join(escape(part) for part in rule.split("/"))


def human_time(
    moment: datetime | None, now: datetime, t: Mapping[str, str], missing: str
) -> Markup:
    """``<time>`` with a relative text, the exact UTC minute on hover and focus."""
    if moment is None:
        return Markup("{}").format(missing)
    return Markup('<time datetime="{}" title="{}" tabindex="0">{}</time>').format(
        format.iso(moment),
        format.utc_time(moment),
        format.relative(moment, now, t["ago"], t["just_now"]),
    )


def last_data(
    route: RouteStatus, last_minute: datetime | None, now: datetime, t: Mapping[str, str]
) -> Markup:
    """When the route was last counted, to the minute when a minute row says so.

    ``last_data_at`` is a minute when the minute strip has data, else a day
    bucket's start; a day's start is never shown as if it were an exact time.
    """
    moment = route.last_data_at
    if moment is None:
        return Markup("{}").format(t["never"])
    if route.minutes and moment >= route.minutes[0].start:
        return human_time(moment, now, t, t["never"])
    if last_minute is not None and queries.floor_day(last_minute) >= moment:
        return human_time(last_minute, now, t, t["never"])
    day = format.iso(moment)
    return Markup('<time datetime="{}" title="{}" tabindex="0">{}</time>').format(
        (day or "")[:10], format.utc_date(moment), t["on_day"].format(day=(day or "")[:10])
    )


def basis_text(route: RouteStatus, t: Mapping[str, str]) -> str:
    """What the verdict is based on: ``"last 5 min, 1,204 requests"`` (``status.js`` alike)."""
    basis = route.basis
    if basis["requests"] == 1:
        return t["basis_one"].format(minutes=basis["minutes"])
    return t["basis"].format(minutes=basis["minutes"], requests=format.count(basis["requests"]))


def latency_text(route: RouteStatus, t: Mapping[str, str]) -> str | None:
    """The window's p95, with the threshold when one is set; None without a figure."""
    latency = route.latency
    p95 = latency["p95_ms"]
    threshold = latency["threshold_ms"]
    if p95 is None and threshold is None:
        return None
    if threshold is None:
        return t["latency_now"].format(p95=format.milliseconds(p95))
    text = t["latency_threshold"].format(
        p95=format.milliseconds(p95), threshold=format.milliseconds(threshold)
    )
    return f"{text}, {t['latency_over']}" if route.latency_breach else text


def budget_context(slo: Slo | None, t: Mapping[str, str]) -> dict[str, Any] | None:
    """The error-budget bar and its texts (colour never alone); None without an objective.

    ``width`` is the bar's filled part in percent (0-100: an overspent budget
    shows an empty bar and says "overspent" in words; so does a route without
    traffic, which says "no traffic yet").
    """
    if slo is None:
        return None
    left = slo.budget_remaining
    if left is None:
        left_text = t["budget_no_traffic"]
    else:
        left_text = t["budget_left"].format(left=format.budget(left))
        if left < 0:
            left_text += f" ({t['budget_overspent']})"
    rate = slo.burn_rate_1h
    return {
        "width": 0.0 if left is None else round(min(max(left, 0.0), 1.0) * 100, 1),
        "level": budget_level(left),
        "left": left_text,
        "objective": t["budget_objective"].format(target=f"{slo.target:g}", days=slo.window_days),
        "burn": t["burn_rates"].format(
            h1=format.burn_rate(slo.burn_rate_1h), h6=format.burn_rate(slo.burn_rate_6h)
        ),
        "paging": slo.paging,
        "paging_text": t["paging"].format(rate=format.burn_rate(rate), limit=f"{PAGE_BURN_RATE:g}"),
    }


def budget_level(left: float | None) -> str:
    """The bar's colour class: ``ok`` above a half, ``low`` above nothing, ``out`` spent,
    ``none`` without traffic (an empty bar: nothing measured, nothing to fill)."""
    if left is None:
        return "none"
    if left > 0.5:
        return "ok"
    return "low" if left > 0 else "out"


def _counts_text(success: int, failure: int, t: Mapping[str, str]) -> str:
    return t["counts"].format(success=format.count(success), failure=format.count(failure))


def row_context(
    route: RouteStatus,
    settings: Settings,
    t: Mapping[str, str],
    now: datetime,
    last_minute: datetime | None,
    run: StripRun[Markup] | None = None,
) -> dict[str, Any]:
    """What ``row.html`` shows of one route."""
    titles = {"24h": t["uptime_24h"]}
    for key, (success, failure) in route.window_counts.items():
        titles[key] = _counts_text(success, failure, t)
    window = route.window
    return {
        "route": route,
        "rule": breakable_rule(route.rule),
        "days": squares(route.days, "day", settings, t, run, ("days", route.id)),
        "minutes": squares(route.minutes, "minute", settings, t, run, ("minutes", route.id)),
        "uptime": {k: format.percent(v) for k, v in route.uptime.items()},
        "uptime_titles": titles,
        "window": t["description_window"].format(window=route.window_minutes)
        + ": "
        + _counts_text(window.success, window.failure, t),
        "basis": basis_text(route, t),
        "latency": latency_text(route, t),
        "budget": budget_context(route.slo, t),
        "codes": own_codes_text(route, settings, t),
        "last": last_data(route, last_minute, now, t),
    }


#: Writes one row's HTML from :func:`row_context` (``row.html``, from the view).
RowRenderer = Callable[[dict[str, Any]], str]


def row_html(
    route: RouteStatus,
    settings: Settings,
    t: Mapping[str, str],
    now: datetime,
    last_minute: datetime | None,
    render_row: RowRenderer,
    run: StripRun[Markup] | None = None,
) -> Markup:
    """One route's row as HTML: the previous answer's, when it was made from the same inputs.

    A row shows its route's status and nothing else of the snapshot, so it is
    made again only when that status is not the previous one (the reader keeps
    an unchanged route's status as the same object within a minute), when the
    minute moved (its relative times, "3 min ago", are written from ``now``),
    or when the quiet route's last counted minute or the settings changed.
    The language and the page's mount point (the details link) are the run's key.
    """

    def make() -> Markup:
        return Markup(render_row(row_context(route, settings, t, now, last_minute, run)))

    if run is None:
        return make()
    # Everything the row shows besides the run's key; equal inputs, equal row.
    inputs = (route, now, last_minute, settings)
    return run.reuse(
        ("row", route.id), inputs, make, carry=(("days", route.id), ("minutes", route.id))
    )


def incident_context(incident: Incident, now: datetime, t: Mapping[str, str]) -> dict[str, Any]:
    """An incident as the page lists it: start, end (or "Ongoing"), duration."""
    return {
        "incident": incident,
        "start": human_time(incident.start, now, t, ""),
        "end": None if incident.ongoing else human_time(incident.end, now, t, ""),
        "duration": format.duration(incident.duration),
    }


def page_context(
    snapshot: Snapshot | None,
    settings: Settings,
    t: Mapping[str, str],
    last_minutes: Mapping[int, datetime],
    render_row: RowRenderer,
    run: StripRun[Markup] | None = None,
) -> dict[str, Any]:
    """The template context of ``page.html`` (``snapshot`` None: data unavailable).

    :param render_row: writes a row's HTML from its :func:`row_context`.
    :param run: the rows and squares of the previous answer (:mod:`.memo`).
    """
    context: dict[str, Any] = {
        "t": t,
        "status_classes": STATUS_CLASSES,
        "legend": [(STATUS_CLASSES[s], t[s]) for s in LEGEND],
        "formula": formula(settings, t),
    }
    if snapshot is None:
        return context
    now = queries.floor_minute(snapshot.now)
    context.update(
        snapshot=snapshot,
        banner=t[banner_key(snapshot.overall)],
        rows=[
            row_html(route, settings, t, now, last_minutes.get(route.id), render_row, run)
            for route in snapshot.routes
        ],
        incidents=[
            incident_context(incident, now, t) for incident in snapshot.incidents[:INCIDENT_LIMIT]
        ],
        updated=format.iso(now),
        updated_text=format.utc_time(now),
    )
    return context


def details_context(
    route: RouteStatus, settings: Settings, t: Mapping[str, str], now: datetime
) -> dict[str, Any]:
    """The details page of one route: every day and minute as a table row."""

    def rows(buckets: Sequence[Bucket], kind: str) -> list[dict[str, str]]:
        return [
            {
                "label": bucket_label(b, kind),
                "status": t[queries.status_of(b, settings)],
                "class": SQUARE_CLASSES[queries.status_of(b, settings)],
                "requests": format.count(b.total),
                "failures": format.count(b.failure),
                "uptime": format.percent(b.uptime),
                "p95": format.decimal(b.p95 if b.total else None, 0, " ms"),
            }
            for b in reversed(buckets)
        ]

    return {
        "t": t,
        "route": route,
        "rule": breakable_rule(route.rule),
        "status_classes": STATUS_CLASSES,
        "uptime": {k: format.percent(v) for k, v in route.uptime.items()},
        "days": rows(route.days, "day"),
        "minutes": rows(route.minutes, "minute"),
        "updated": format.iso(now),
        "updated_text": format.utc_time(now),
    }
