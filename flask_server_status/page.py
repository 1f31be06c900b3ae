"""The public status page: HTML, ``summary.json``, an Atom feed and SVG badges.

Everything is server-rendered from :mod:`.queries`; a small script
(``static/flask_status/status.js``) refreshes the figures from
``summary.json`` every ``FLASK_STATUS_REFRESH_SECONDS`` without a reload.
Each answer carries ``Cache-Control: public, max-age=<=60`` and a strong
ETag of its body, so a revalidation that finds nothing new is a 304.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa
from flask import Blueprint, Response, abort, current_app, render_template, request, url_for
from markupsafe import Markup, escape

from . import i18n, queries
from .queries import (
    DEGRADED,
    MAJOR_OUTAGE,
    NO_DATA,
    OPERATIONAL,
    PARTIAL_OUTAGE,
    Bucket,
    Incident,
    RouteStatus,
)
from .snapshots import Snapshot

if TYPE_CHECKING:
    from .config import Settings
    from .state import StatusState

log = logging.getLogger("flask_server_status")

#: Statuspage's ``status.indicator`` for our overall status.
INDICATORS = {
    OPERATIONAL: "none",
    NO_DATA: "none",
    DEGRADED: "minor",
    PARTIAL_OUTAGE: "major",
    MAJOR_OUTAGE: "critical",
}
#: Short CSS classes: the page has up to 150 squares per route.
STATUS_CLASSES = {
    OPERATIONAL: "s-op",
    DEGRADED: "s-dg",
    PARTIAL_OUTAGE: "s-po",
    MAJOR_OUTAGE: "s-mo",
    NO_DATA: "s-nd",
}
BADGE_COLOURS = {
    OPERATIONAL: "#2e7d32",
    DEGRADED: "#b26a00",
    PARTIAL_OUTAGE: "#c2410c",
    MAJOR_OUTAGE: "#b91c1c",
    NO_DATA: "#6b7280",
}
DEFAULT_REFRESH_SECONDS = 60
DEFAULT_CACHE_SECONDS = 30
#: Incidents on the page and in summary.json; the Atom feed has all a snapshot keeps.
INCIDENT_LIMIT = 10

#: Errors that mean "the status database cannot answer now".
DATABASE_ERRORS = (sa.exc.SQLAlchemyError, OSError)


# -- formatting -----------------------------------------------------------------------


def iso(moment: datetime | None) -> str | None:
    """UTC ISO 8601 with ``Z``, to the second; None stays None."""
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _percent(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _format_percent(value: float | None) -> str:
    if value is None:
        return "\u2013"  # an en dash: no figure
    if value >= 99.995 and value < 100:
        return "99.99%"  # never round a failure up to a perfect score
    return f"{value:.2f}%"


def _format_duration(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days} d {hours} h {minutes} min"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


def _settings_int(settings: Settings, key: str, default: int, low: int, high: int) -> int:
    try:
        value = int(settings.extra.get(key, default))
    except (TypeError, ValueError):
        value = default
    return max(low, min(high, value))


def refresh_seconds(settings: Settings) -> int:
    """``FLASK_STATUS_REFRESH_SECONDS``: how often the page refreshes (1-3600, default 60)."""
    return _settings_int(settings, "FLASK_STATUS_REFRESH_SECONDS", DEFAULT_REFRESH_SECONDS, 1, 3600)


def page_cache_seconds(settings: Settings) -> int:
    """``FLASK_STATUS_PAGE_CACHE_SECONDS``: how long a rendering may be reused (0-60, default 5)."""
    return _settings_int(settings, "FLASK_STATUS_PAGE_CACHE_SECONDS", 5, 0, 60)


def cache_seconds(settings: Settings) -> int:
    """``FLASK_STATUS_CACHE_SECONDS``: ``max-age`` of every answer (0-60, default 30)."""
    return _settings_int(settings, "FLASK_STATUS_CACHE_SECONDS", DEFAULT_CACHE_SECONDS, 0, 60)


def _tooltip(label: str, bucket: Bucket, status_label: str, t: Mapping[str, str]) -> str:
    lines = [
        f"{label} · {status_label}",
        f"{t['requests']}: {bucket.total:,}",
        f"{t['failures']}: {bucket.failure:,}",
        f"{t['uptime']}: {_format_percent(bucket.uptime)}",
    ]
    p95 = bucket.p95 if bucket.total else None
    if p95 is not None:
        lines.append(f"{t['p95']}: {p95:,.0f} ms")
    return "\n".join(lines)


#: A rendering: its inputs (for a strip, its buckets), its text, and for a strip
#: each bucket's text by object id.
_Strip = tuple[object, str, dict[int, tuple[Bucket, str]]]


class RenderMemo:
    """The previous rendering of each strip of buckets, and of each bucket in it.

    :class:`~.snapshots.SnapshotReader` hands out the same :class:`Bucket`
    while its data is unchanged and a new one when it changes. So a strip
    whose buckets are those of the previous page renders as it did then, and
    in a strip that moved on (a new minute) or changed, only the new buckets
    are rendered: most of a page's thousands of squares are copied. Each
    rendering reads the previous renderings and keeps its own, which then
    replace them; the memo holds the buckets too, so an object id it
    remembers is never reused.
    """

    def __init__(self) -> None:
        self._previous: dict[Hashable, dict[Hashable, _Strip]] = {}

    def open(self, key: Hashable) -> Renderings:
        """Renderings for one answer; ``key`` is what else their text depends on (language)."""
        return Renderings(self, key, self._previous.get(key, {}))

    def _keep(self, key: Hashable, strips: dict[Hashable, _Strip]) -> None:
        self._previous[key] = strips


class Renderings:
    """One answer's renderings of strips; :meth:`close` hands them to the memo."""

    def __init__(self, memo: RenderMemo, key: Hashable, previous: dict[Hashable, _Strip]) -> None:
        self._memo = memo
        self._key = key
        self._previous = previous
        self._current: dict[Hashable, _Strip] = {}

    def strip(
        self,
        key: Hashable,
        buckets: list[Bucket],
        separator: str,
        render: Callable[..., str],
        *args: Any,
    ) -> str:
        """``separator.join(render(bucket, *args) for each bucket)``, reusing earlier texts."""
        previous = self._previous.get(key)
        # List equality checks identity first: same objects, same text.
        if previous is not None and previous[0] == buckets:
            self._current[key] = previous
            return previous[1]
        known = previous[2] if previous is not None else {}
        texts: dict[int, tuple[Bucket, str]] = {}
        for bucket in buckets:
            hit = known.get(id(bucket))
            if hit is None or hit[0] is not bucket:
                hit = (bucket, render(bucket, *args))
            texts[id(bucket)] = hit
        text = separator.join(hit[1] for hit in texts.values())
        self._current[key] = (buckets, text, texts)
        return text

    def text(self, key: Hashable, inputs: Hashable, render: Callable[..., str], *args: Any) -> str:
        """``render(*args)``, or what it gave last time for the same ``key`` and ``inputs``."""
        previous = self._previous.get(key)
        if previous is not None and previous[0] == inputs:
            text: str = previous[1]
        else:
            text = render(*args)
        self._current[key] = (inputs, text, {})
        return text

    def close(self) -> None:
        self._memo._keep(self._key, self._current)


def _square(
    bucket: Bucket, fmt: str, tabindex: int, settings: Settings, t: Mapping[str, str]
) -> str:
    status = queries.status_of(bucket, settings)
    label = bucket.start.strftime(fmt)
    # Only numbers, dates and our own texts go into the tooltip, but it is
    # escaped anyway so the square stays safe if a label ever carries user text.
    tip = str(escape(_tooltip(label, bucket, t[status], t))).replace("\n", "&#10;")
    return (
        f'<span class="sq {STATUS_CLASSES[status]}" role="img"'
        f' tabindex="{tabindex}" title="{tip}"></span>'
    )


class Strip(NamedTuple):
    """A strip's squares, as HTML: all but the last, and the last, which holds the tab stop.

    Kept apart so that comparing two strips compares the kept texts, without
    joining 30 kB of squares first; Jinja prints it through ``__html__``.
    """

    older: str
    last: str

    def __html__(self) -> str:
        return self.older + self.last


def _squares(
    buckets: Sequence[Bucket],
    kind: str,
    settings: Settings,
    t: Mapping[str, str],
    renderings: Renderings | None = None,
    key: Hashable = None,
) -> Strip:
    """One strip of squares, built here rather than in Jinja: it is the page's hot loop.

    :param renderings: where to find squares rendered for the previous page.
    :param key: which strip this is (the route), for ``renderings``.
    """
    fmt = "%Y-%m-%d UTC" if kind == "day" else "%Y-%m-%d %H:%M UTC"
    # One tab stop per strip (roving tabindex): the arrow keys move inside it.
    older, last = list(buckets[:-1]), list(buckets[-1:])
    if renderings is None or key is None:
        text = "".join(_square(bucket, fmt, -1, settings, t) for bucket in older)
        return Strip(text, _square(last[0], fmt, 0, settings, t))
    return Strip(
        renderings.strip((kind, key), older, "", _square, fmt, -1, settings, t),
        renderings.strip((kind, "last", key), last, "", _square, fmt, 0, settings, t),
    )


def _counts_text(success: int, failure: int, t: Mapping[str, str]) -> str:
    return t["counts"].format(success=f"{success:,}", failure=f"{failure:,}")


def _uptime_titles(route: RouteStatus, t: Mapping[str, str]) -> dict[str, str]:
    """The numbers behind the 7 d / 30 d / 90 d uptimes, from the day series."""
    titles = {"24h": t["uptime_24h"]}
    for key, (success, failure) in route.window_counts.items():
        titles[key] = _counts_text(success, failure, t)
    return titles


def _window_title(route: RouteStatus, settings: Settings, t: Mapping[str, str]) -> str:
    window = route.window
    return (
        t["description_window"].format(window=settings.status_window)
        + ": "
        + _counts_text(window.success, window.failure, t)
    )


def _status_text(settings: Settings, t: Mapping[str, str]) -> dict[str, str]:
    return {
        status: t[status]
        for status in (OPERATIONAL, DEGRADED, PARTIAL_OUTAGE, MAJOR_OUTAGE, NO_DATA)
    }


def banner_key(overall: str, routes: Sequence[RouteStatus]) -> str:
    if overall == NO_DATA:
        return "banner_no_data"
    return f"banner_{INDICATORS[overall]}"


# -- summary.json -----------------------------------------------------------------------


def _series_entry(bucket: Bucket, key: str, stamp: str) -> dict[str, Any]:
    return {
        key: stamp,
        "total": bucket.total,
        "success": bucket.success,
        "failure": bucket.failure,
        "uptime": _percent(bucket.uptime),
    }


def incident_impact(incident: Incident, settings: Settings) -> str:
    """Statuspage's ``impact`` from the worst minute of the incident."""
    if incident.peak_ratio >= settings.major_outage_ratio:
        return "critical"
    if incident.peak_ratio >= settings.partial_outage_ratio:
        return "major"
    return "minor"


def _component(route: RouteStatus) -> dict[str, Any]:
    """A component of ``summary.json`` without its day and minute series."""
    return {
        "id": str(route.id),
        "name": route.name,
        "rule": route.rule,
        "description": route.doc,
        "position": route.position,
        "status": route.status,
        "updated_at": iso(route.last_data_at),
        "uptime": {k: _percent(v) for k, v in route.uptime.items()},
    }


def _day_entry(bucket: Bucket) -> dict[str, Any]:
    return _series_entry(bucket, "date", bucket.start.strftime("%Y-%m-%d"))


def _minute_entry(bucket: Bucket) -> dict[str, Any]:
    return _series_entry(bucket, "minute", iso(bucket.start) or "")


def _summary_parts(
    state: StatusState, snapshot: Snapshot, page_url: str, language: str
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """``summary.json``'s page, status and incidents."""
    settings = state.settings
    t = i18n.texts(language)
    page = {
        "name": page_title(state, t),
        "url": page_url,
        # The data changes once a minute; the minute keeps the ETag stable.
        "updated_at": iso(queries.floor_minute(snapshot.now)),
    }
    status = {
        "indicator": INDICATORS[snapshot.overall],
        "description": t[banner_key(snapshot.overall, snapshot.routes)],
    }
    incidents = [
        {
            "id": incident.id,
            "name": t["incident_name"].format(name=incident.route_name),
            "status": "investigating" if incident.ongoing else "resolved",
            "impact": incident_impact(incident, settings),
            "created_at": iso(incident.start),
            "resolved_at": None if incident.ongoing else iso(incident.end),
            "component_ids": [str(incident.route_id)],
            "failures": incident.failures,
        }
        for incident in snapshot.incidents[:INCIDENT_LIMIT]
    ]
    return page, status, incidents


def build_summary(
    state: StatusState, snapshot: Snapshot, page_url: str, language: str = "en"
) -> dict[str, Any]:
    """The ``summary.json`` document of a snapshot (DESIGN.md's shape)."""
    page, status, incidents = _summary_parts(state, snapshot, page_url, language)
    components = [
        {
            **_component(route),
            "days": [_day_entry(b) for b in route.days],
            "minutes": [_minute_entry(b) for b in route.minutes],
        }
        for route in snapshot.routes
    ]
    return {"page": page, "status": status, "components": components, "incidents": incidents}


def _entry_text(bucket: Bucket, entry: Callable[[Bucket], dict[str, Any]]) -> str:
    return _dumps(entry(bucket))


def _dumps(value: Any) -> str:
    # The stdlib encoder, compact and unsorted: the host's JSON settings are
    # the host's (DESIGN.md), and this is the largest answer of the page.
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def summary_text(
    state: StatusState,
    snapshot: Snapshot,
    page_url: str,
    language: str = "en",
    renderings: Renderings | None = None,
) -> str:
    """:func:`build_summary` as JSON text, series entries reused from ``renderings``.

    The same text as ``_dumps(build_summary(...))``, put together from pieces
    so that the 150 entries per route need not all be encoded again.
    """
    page, status, incidents = _summary_parts(state, snapshot, page_url, language)

    def entries(route: RouteStatus, kind: str, entry: Callable[[Bucket], dict[str, Any]]) -> str:
        buckets = route.days if kind == "days" else route.minutes
        if renderings is None:
            return ",".join(_entry_text(b, entry) for b in buckets)
        return renderings.strip((kind, route.id), buckets, ",", _entry_text, entry)

    components = ",".join(
        _dumps(_component(route))[:-1]
        + ',"days":['
        + entries(route, "days", _day_entry)
        + '],"minutes":['
        + entries(route, "minutes", _minute_entry)
        + "]}"
        for route in snapshot.routes
    )
    return (
        f'{{"page":{_dumps(page)},"status":{_dumps(status)},'
        f'"components":[{components}],"incidents":{_dumps(incidents)}}}'
    )


def page_title(state: StatusState, t: Mapping[str, str]) -> str:
    """``FLASK_STATUS_PAGE_TITLE``, else "Service status" in the page's language."""
    return state.settings.page_title or t["title"]


# -- responses -----------------------------------------------------------------------


class PageCache:
    """Rendered answers for a few seconds, keyed by the snapshot's version.

    A snapshot's :attr:`~.snapshots.Snapshot.version` changes with its data
    (from any process) and with the minute, so a cached answer is never older
    than its data; the time limit just keeps the cache small. ``ttl`` 0 turns
    caching off.
    """

    def __init__(self, ttl: float, size: int = 64) -> None:
        self.ttl = ttl
        self.size = size
        self._items: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_build(self, key: Hashable, build: Callable[[], Any]) -> Any:
        if self.ttl <= 0:
            return build()
        started = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
        if hit is not None and started - hit[0] < self.ttl:
            return hit[1]
        value = build()
        with self._lock:
            self._items[key] = (started, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


def _etagged(body: str | bytes) -> tuple[bytes, str]:
    data = body.encode() if isinstance(body, str) else body
    return data, hashlib.sha1(data).hexdigest()


def _cached(
    body: tuple[bytes, str], mimetype: str, state: StatusState, vary_language: bool
) -> Response:
    """The answer with caching headers; a matching ``If-None-Match`` gets a 304."""
    response = Response(body[0], mimetype=mimetype)
    response.headers["Cache-Control"] = f"public, max-age={cache_seconds(state.settings)}"
    if vary_language:
        response.vary.add("Accept-Language")
    response.set_etag(body[1])
    response.make_conditional(request)
    return response


def _unavailable_headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Retry-After"] = "30"
    return response


def _badge_svg(label: str, message: str, colour: str) -> str:
    """A shields-style flat badge; widths from a per-character estimate, as shields does."""
    left = 10 + int(6.5 * len(label))
    right = 10 + int(6.5 * len(message))
    return render_template(
        "flask_status/badge.svg",
        label=label,
        message=message,
        colour=colour,
        left=left,
        right=right,
        width=left + right,
    )


def make_blueprint(state: StatusState) -> Blueprint:
    """The public blueprint ``flask_status``: page, summary.json, Atom feed, badges.

    It brings its own templates (``templates/flask_status/``) and static files,
    served under ``<url_prefix>/static`` so the host's ``/static`` is untouched.
    """
    static_path = "/static" if state.url_prefix else "/flask-status-static"
    bp = Blueprint(
        "flask_status",
        __name__,
        template_folder="templates",
        static_folder="static/flask_status",
        static_url_path=static_path,
    )
    settings = state.settings
    configured_language = settings.language

    def language() -> str:
        return i18n.choose_language(configured_language, request.accept_languages)

    vary = not configured_language

    cache = PageCache(page_cache_seconds(settings))
    memo = RenderMemo()

    def current() -> Snapshot:
        state.route_ids()
        return state.reader.snapshot()

    def render_page(snapshot: Snapshot | None, lang: str) -> str:
        t = i18n.texts(lang)
        context: dict[str, Any] = {
            "t": t,
            "lang": lang,
            "title": page_title(state, t),
            "snapshot": snapshot,
            "refresh": refresh_seconds(settings),
            "status_classes": STATUS_CLASSES,
            "statuses": _status_text(settings, t),
            "formula": t["formula"].format(
                window=settings.status_window,
                degraded=f"{settings.degraded_ratio * 100:g}",
                partial=f"{settings.partial_outage_ratio * 100:g}",
                major=f"{settings.major_outage_ratio * 100:g}",
            ),
        }
        if snapshot is not None:
            renderings = memo.open(("page", lang))
            context["banner"] = t[banner_key(snapshot.overall, snapshot.routes)]
            row_template = current_app.jinja_env.get_template("flask_status/row.html")
            row_context = {
                "t": t,
                "statuses": context["statuses"],
                "status_classes": STATUS_CLASSES,
            }

            def render_row(row: dict[str, Any]) -> str:
                return row_template.render(row=row, **row_context)

            rows = []
            for route in snapshot.routes:
                row: dict[str, Any] = {
                    "route": route,
                    "days": _squares(route.days, "day", settings, t, renderings, route.id),
                    "minutes": _squares(route.minutes, "minute", settings, t, renderings, route.id),
                    "uptime": {k: _format_percent(v) for k, v in route.uptime.items()},
                    "uptime_titles": _uptime_titles(route, t),
                    "window": _window_title(route, settings, t),
                    "last": iso(route.last_data_at),
                }
                # Everything the row shows: equal inputs, equal row.
                inputs = (
                    route.rule,
                    route.name,
                    route.doc,
                    route.status,
                    row["days"],
                    row["minutes"],
                    tuple(row["uptime"].items()),
                    tuple(row["uptime_titles"].items()),
                    row["window"],
                    row["last"],
                )
                # row.html is autoescaped like page.html: names and docs are escaped there.
                rows.append(Markup(renderings.text(("row", route.id), inputs, render_row, row)))
            context["rows"] = rows
            context["incidents"] = [
                {
                    "incident": incident,
                    "start": iso(incident.start),
                    "end": None if incident.ongoing else iso(incident.end),
                    "duration": _format_duration(incident.duration),
                }
                for incident in snapshot.incidents[:INCIDENT_LIMIT]
            ]
            renderings.close()
            # To the minute, like the data: the body (and its ETag) stays the same within one.
            context["updated"] = iso(queries.floor_minute(snapshot.now))
        # Data for the refresher script, embedded with tojson (escapes <, >, &, ').
        context["script_config"] = {
            "summary": url_for("flask_status.summary"),
            "refresh": refresh_seconds(settings),
            "lang": lang,
            "texts": dict(t),
            "statusClasses": STATUS_CLASSES,
            "window": settings.status_window,
            "thresholds": {
                "degraded": settings.degraded_ratio,
                "partial": settings.partial_outage_ratio,
                "major": settings.major_outage_ratio,
            },
            "components": [
                {"id": str(r.id), "name": r.name} for r in (snapshot.routes if snapshot else [])
            ],
        }
        return render_template("flask_status/page.html", **context)

    def index() -> Response:
        lang = language()
        try:
            snapshot = current()
            body = cache.get_or_build(
                ("page", lang, request.host_url, snapshot.version),
                lambda: _etagged(render_page(snapshot, lang)),
            )
        except DATABASE_ERRORS as exc:
            log.warning("flask-server-status: status page without data: %s", exc)
            response = Response(render_page(None, lang), status=503, mimetype="text/html")
            return _unavailable_headers(response)
        return _cached(body, "text/html", state, vary)

    def summary() -> Response:
        lang = language()
        page_url = url_for("flask_status.index", _external=True)

        def build(snapshot: Snapshot) -> tuple[bytes, str]:
            renderings = memo.open("summary")
            text = summary_text(state, snapshot, page_url, lang, renderings)
            renderings.close()
            return _etagged(text)

        try:
            snapshot = current()
            body = cache.get_or_build(
                ("summary", lang, page_url, snapshot.version), lambda: build(snapshot)
            )
        except DATABASE_ERRORS as exc:
            log.warning("flask-server-status: summary.json without data: %s", exc)
            response = Response(
                json.dumps({"error": i18n.texts(lang)["unavailable"]}),
                status=503,
                mimetype="application/json",
            )
            return _unavailable_headers(response)
        return _cached(body, "application/json", state, vary)

    def history() -> Response:
        lang = language()
        t = i18n.texts(lang)
        try:
            snapshot = current()
        except DATABASE_ERRORS as exc:
            log.warning("flask-server-status: history.atom without data: %s", exc)
            return _unavailable_headers(Response(t["unavailable"], 503, mimetype="text/plain"))
        page_url = url_for("flask_status.index", _external=True)
        entries = [
            {
                "id": f"{page_url}#incident-{incident.id}",
                "title": t["incident_name"].format(name=incident.route_name)
                + f" ({t['ongoing'] if incident.ongoing else t['resolved']})",
                "updated": iso(incident.end),
                "published": iso(incident.start),
                "summary": (
                    f"{incident.rule}: {t['started']} {iso(incident.start)}, "
                    + (t["ongoing"] if incident.ongoing else f"{t['ended']} {iso(incident.end)}")
                    + f", {t['duration']} {_format_duration(incident.duration)},"
                    f" {t['failures']} {incident.failures:,}"
                ),
            }
            for incident in snapshot.incidents
        ]
        updated = max((i.end for i in snapshot.incidents), default=queries.floor_day(snapshot.now))
        body = render_template(
            "flask_status/history.atom.xml",
            title=page_title(state, t),
            lang=lang,
            feed_url=url_for("flask_status.history", _external=True),
            page_url=page_url,
            updated=iso(updated),
            entries=entries,
        )
        return _cached(_etagged(body), "application/atom+xml", state, vary)

    def badge(route_id: int) -> Response:
        lang = language()
        t = i18n.texts(lang)
        try:
            routes = {r.id: r for r in current().routes}
        except DATABASE_ERRORS as exc:
            log.warning("flask-server-status: badge without data: %s", exc)
            svg = _badge_svg("status", t["unavailable"].lower(), BADGE_COLOURS[NO_DATA])
            return _unavailable_headers(Response(svg, 503, mimetype="image/svg+xml"))
        route = routes.get(route_id)
        if route is None:
            abort(404)
        uptime = route.uptime.get("30d")
        message = t[route.status].lower()
        if uptime is not None:
            message += f" · {_format_percent(uptime)}"
        svg = _badge_svg(route.name or route.rule, message, BADGE_COLOURS[route.status])
        return _cached(_etagged(svg), "image/svg+xml", state, vary)

    bp.add_url_rule("" if state.url_prefix else "/", "index", index, methods=["GET"])
    bp.add_url_rule("/summary.json", "summary", summary, methods=["GET"])
    bp.add_url_rule("/history.atom", "history", history, methods=["GET"])
    bp.add_url_rule("/badge/<int:route_id>.svg", "badge", badge, methods=["GET"])
    return bp
