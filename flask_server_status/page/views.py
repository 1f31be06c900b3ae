"""The public views: module-level functions that find their app with :func:`get_state`.

Each view reads one snapshot at the state's clock (``state.clock()``, which
tests replace to stand at a chosen minute), builds its body with
:mod:`.render`, :mod:`.summary` or :mod:`.badge`, and answers through
:func:`.caching.respond`. A database that cannot answer gives a 503, never a
500 (DESIGN.md). Links in publicly cached answers come from
``FLASK_STATUS_PUBLIC_URL`` or are relative: never from the request's ``Host``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flask import Response, abort, current_app, render_template, request, url_for

from .. import format, i18n, queries
from ..queries import DEGRADED, MAJOR_OUTAGE, NO_DATA, OPERATIONAL, PARTIAL_OUTAGE
from ..snapshots import Snapshot
from ..state import StatusState, get_state
from ..verdicts import PAGE_BURN_RATE
from . import render
from .badge import badge_svg
from .caching import parts_of, respond, unavailable
from .summary import build_updates, encode, parse_since, routes_key, summary_text

log = logging.getLogger("flask_server_status")

#: Errors that mean "the status database cannot answer now".
DATABASE_ERRORS = (sa.exc.SQLAlchemyError, OSError)

BADGE_COLOURS = {
    OPERATIONAL: "#2e7d32",
    DEGRADED: "#b26a00",
    PARTIAL_OUTAGE: "#c2410c",
    MAJOR_OUTAGE: "#b91c1c",
    NO_DATA: "#6b7280",
}


# -- helpers ---------------------------------------------------------------------------


def _language(state: StatusState) -> tuple[str, bool]:
    """The answer's language, and whether it came from ``Accept-Language`` (then Vary)."""
    configured = state.settings.language
    return i18n.choose_language(configured, request.accept_languages), not configured


def page_title(state: StatusState, t: Mapping[str, str]) -> str:
    """``FLASK_STATUS_PAGE_TITLE``, else "Service status" in the page's language."""
    return state.settings.page_title or t["title"]


def link(state: StatusState, endpoint: str, **values: Any) -> str:
    """A link for a publicly cached answer: from ``FLASK_STATUS_PUBLIC_URL``, else relative.

    The request's ``Host`` header is the client's to write; a shared cache
    would hand a forged one to everybody, so it never goes into a body.
    """
    path = url_for(endpoint, **values)
    base = state.settings.public_url
    if base is None:
        return path
    # The path below the app's mount point: the public URL stands for that point.
    script_root = request.script_root
    if script_root and path.startswith(script_root):
        path = path[len(script_root) :]
    return base + path


def current(state: StatusState) -> Snapshot:
    """The page's data now, by the state's clock."""
    state.route_ids()
    return state.reader.snapshot(state.clock())


def _last_minutes(state: StatusState, snapshot: Snapshot) -> dict[int, datetime]:
    """The last counted minute of routes whose newest data is older than the minute strip.

    Read once per change of such a route's last day, so a quiet page costs no query.
    """
    parts = parts_of(state)
    wanted = {
        route.id: route.last_data_at
        for route in snapshot.routes
        if route.last_data_at is not None
        and route.minutes
        and route.last_data_at < route.minutes[0].start
    }
    with parts.lock:
        known = parts.last_minutes
        missing = [rid for rid, day in wanted.items() if known.get(rid, (None, None))[0] != day]
        if missing:
            with state.engine.connect() as conn:
                found = queries.last_minutes(conn, missing)
            for rid in missing:
                day = wanted[rid]
                known[rid] = (day, found.get(rid))
        return {rid: minute for rid, (day, minute) in known.items() if rid in wanted and minute}


def _script_config(state: StatusState, snapshot: Snapshot | None, lang: str) -> dict[str, Any]:
    """What ``status.js`` needs, embedded in the page with ``tojson``."""
    settings = state.settings
    return {
        "updates": url_for("flask_status.updates"),
        "summary": url_for("flask_status.summary"),
        "refresh": settings.refresh_seconds,
        "lang": lang,
        # The footer's texts are the server's alone: not shipped to the script.
        "texts": {k: v for k, v in i18n.texts(lang).items() if not k.startswith("formula")},
        "statusClasses": render.STATUS_CLASSES,
        "squareClasses": render.SQUARE_CLASSES,
        "window": settings.status_window,
        "pageBurnRate": PAGE_BURN_RATE,
        "thresholds": {
            "degraded": settings.degraded_ratio,
            "partial": settings.partial_outage_ratio,
            "major": settings.major_outage_ratio,
        },
        "now": format.iso(queries.floor_minute(snapshot.now)) if snapshot else None,
        "routes": routes_key(snapshot.routes) if snapshot else None,
        "components": [
            {"id": str(r.id), "name": r.name} for r in (snapshot.routes if snapshot else [])
        ],
    }


def _render_page(state: StatusState, snapshot: Snapshot | None, lang: str) -> str:
    t = i18n.texts(lang)
    last = _last_minutes(state, snapshot) if snapshot is not None else {}
    row_template = current_app.jinja_env.get_template("flask_status/row.html")

    def render_row(row: dict[str, Any]) -> str:
        return row_template.render(row=row, t=t, status_classes=render.STATUS_CLASSES)

    # Rows are in the page's language and link to details pages below the
    # app's mount point: both are the key of what one answer reuses of the last.
    run = parts_of(state).rows.open((lang, request.script_root))
    context = render.page_context(snapshot, state.settings, t, last, render_row, run)
    run.close()
    return render_template(
        "flask_status/page.html",
        lang=lang,
        title=page_title(state, t),
        refresh=state.settings.refresh_seconds,
        credit=state.settings.show_credit,
        script_config=_script_config(state, snapshot, lang),
        **context,
    )


# -- views -----------------------------------------------------------------------------


def index() -> Response:
    """``GET <url_prefix>``: the HTML page."""
    state = get_state()
    lang, vary = _language(state)
    try:
        snapshot = current(state)
        body = parts_of(state).cache.get_or_build(
            ("page", lang, snapshot.version), lambda: _render_page(state, snapshot, lang)
        )
    except DATABASE_ERRORS as exc:
        log.warning("flask-server-status: status page without data: %s", exc)
        page = _render_page(state, None, lang)
        return unavailable(Response(page, status=503, mimetype="text/html"))
    return respond(body, "text/html", state, vary)


def _json_unavailable(lang: str, what: str, exc: Exception) -> Response:
    log.warning("flask-server-status: %s without data: %s", what, exc)
    body = encode({"error": i18n.texts(lang)["unavailable"]})
    return unavailable(Response(body, status=503, mimetype="application/json"))


def summary() -> Response:
    """``GET <url_prefix>/summary.json``: Statuspage's public shape (DESIGN.md)."""
    state = get_state()
    lang, vary = _language(state)
    t = i18n.texts(lang)
    try:
        snapshot = current(state)
        page_url = link(state, "flask_status.index")
        body = parts_of(state).cache.get_or_build(
            ("summary", lang, page_url, snapshot.version),
            lambda: _summary_text(state, snapshot, t, page_url),
        )
    except DATABASE_ERRORS as exc:
        return _json_unavailable(lang, "summary.json", exc)
    return respond(body, "application/json", state, vary)


def _summary_text(
    state: StatusState, snapshot: Snapshot, t: Mapping[str, str], page_url: str
) -> str:
    # Series entries hold numbers and dates only: the same in every language.
    run = parts_of(state).entries.open("entries")
    text = summary_text(snapshot, state.settings, t, page_title(state, t), page_url, run)
    run.close()
    return text


def updates() -> Response:
    """``GET <url_prefix>/updates.json?since=<minute>``: the page's own compact refresh."""
    state = get_state()
    lang, vary = _language(state)
    t = i18n.texts(lang)
    since = parse_since(request.args.get("since"))
    try:
        snapshot = current(state)
        body = parts_of(state).cache.get_or_build(
            ("updates", lang, since, snapshot.version),
            lambda: encode(build_updates(snapshot, state.settings, t, since)),
        )
    except DATABASE_ERRORS as exc:
        return _json_unavailable(lang, "updates.json", exc)
    return respond(body, "application/json", state, vary)


def history() -> Response:
    """``GET <url_prefix>/history.atom``: an Atom feed of the incidents."""
    state = get_state()
    lang, vary = _language(state)
    t = i18n.texts(lang)
    try:
        snapshot = current(state)
    except DATABASE_ERRORS as exc:
        log.warning("flask-server-status: history.atom without data: %s", exc)
        return unavailable(Response(t["unavailable"], 503, mimetype="text/plain"))
    page_url = link(state, "flask_status.index")
    feed_url = link(state, "flask_status.history")
    # Atom ids must be absolute IRIs; without a public URL they are URNs of the
    # path, and the links stay relative (resolved against the feed's address).
    id_base = page_url if state.settings.public_url else f"urn:flask-server-status:{page_url}"
    entries = []
    for incident in snapshot.incidents:
        ended = (
            t["ongoing"] if incident.ongoing else f"{t['ended']} {format.utc_time(incident.end)}"
        )
        entries.append(
            {
                "id": f"{id_base}#incident-{incident.id}",
                "link": f"{page_url}#incident-{incident.id}",
                "title": t["incident_name"].format(name=incident.route_name)
                + f" ({t['ongoing'] if incident.ongoing else t['resolved']})",
                "updated": format.iso(incident.end),
                "published": format.iso(incident.start),
                "summary": (
                    f"{incident.rule}: {t['started']} {format.utc_time(incident.start)}, {ended},"
                    f" {t['duration']} {format.duration(incident.duration)},"
                    f" {t['failures']} {format.count(incident.failures)}"
                ),
            }
        )
    updated = max((i.end for i in snapshot.incidents), default=queries.floor_day(snapshot.now))
    body = render_template(
        "flask_status/history.atom.xml",
        title=page_title(state, t),
        lang=lang,
        feed_url=feed_url,
        feed_id=feed_url if state.settings.public_url else f"urn:flask-server-status:{feed_url}",
        page_url=page_url,
        updated=format.iso(updated),
        entries=entries,
    )
    return respond(body, "application/atom+xml", state, vary)


def badge(route_id: int) -> Response:
    """``GET <url_prefix>/badge/<id>.svg``: the route's status and 30-day uptime.

    ``?metric=budget`` draws the error budget left instead; any other metric
    is a 400 whose body is still a badge, reading "unknown metric", so a typo
    in a README shows as such rather than as a broken image or a wrong figure.
    """
    state = get_state()
    lang, vary = _language(state)
    t = i18n.texts(lang)
    try:
        routes = {r.id: r for r in current(state).routes}
    except DATABASE_ERRORS as exc:
        log.warning("flask-server-status: badge without data: %s", exc)
        svg = badge_svg("status", t["unavailable"].lower(), BADGE_COLOURS[NO_DATA])
        return unavailable(Response(svg, 503, mimetype="image/svg+xml"))
    route = routes.get(route_id)
    if route is None:
        abort(404)
    metric = request.args.get("metric", "status")
    if metric == "budget":
        return respond(_budget_badge(route, t), "image/svg+xml", state, vary)
    if metric != "status":
        # A badge URL is read by people in a README: a 400 that still draws, saying why.
        svg = badge_svg("metric", t["badge_unknown_metric"], BADGE_COLOURS[MAJOR_OUTAGE])
        return Response(svg, 400, mimetype="image/svg+xml")
    uptime = route.uptime.get("30d")
    message = t[route.status].lower()
    if uptime is not None:
        message += f" · {format.percent(uptime)}"
    svg = badge_svg(route.name or route.rule, message, BADGE_COLOURS[route.status])
    return respond(svg, "image/svg+xml", state, vary)


#: The budget badge's colour by :func:`.render.budget_level`.
BUDGET_COLOURS = {"ok": BADGE_COLOURS[OPERATIONAL], "low": BADGE_COLOURS[DEGRADED],
                  "out": BADGE_COLOURS[MAJOR_OUTAGE], "none": BADGE_COLOURS[NO_DATA]}  # fmt: skip


def _budget_badge(route: queries.RouteStatus, t: Mapping[str, str]) -> str:
    """``?metric=budget``: the error budget left, ``budget | 50.0%``; grey without an
    objective ("no objective") or without traffic ("no data")."""
    label = t["badge_budget"]
    if route.slo is None:
        return badge_svg(label, t["badge_no_objective"], BADGE_COLOURS[NO_DATA])
    left = route.slo.budget_remaining
    if left is None:
        return badge_svg(label, t[NO_DATA].lower(), BADGE_COLOURS[NO_DATA])
    return badge_svg(label, format.budget(left), BUDGET_COLOURS[render.budget_level(left)])


def route_details(route_id: int) -> Response:
    """``GET <url_prefix>/routes/<id>``: every day and minute of a route, as tables.

    The page's squares show their numbers in a tooltip with JavaScript; this
    page shows them all without.
    """
    state = get_state()
    lang, vary = _language(state)
    t = i18n.texts(lang)
    try:
        snapshot = current(state)
    except DATABASE_ERRORS as exc:
        log.warning("flask-server-status: route details without data: %s", exc)
        return unavailable(Response(t["unavailable"], 503, mimetype="text/plain"))
    route = next((r for r in snapshot.routes if r.id == route_id), None)
    if route is None:
        abort(404)
    context = render.details_context(route, state.settings, t, snapshot.now)
    body = render_template(
        "flask_status/route.html", lang=lang, title=page_title(state, t), **context
    )
    return respond(body, "text/html", state, vary)
