"""``flask status ...``: the operator's commands.

The group is added to ``app.cli`` by :class:`~flask_server_status.FlaskStatus`,
so with ``FLASK_APP`` pointing at the host app::

    flask status init-db            # create the flask_status_* tables, sync the routes
    flask status routes             # every route: status, uptime 24h/7d/30d/90d, hidden
    flask status incidents          # recent runs of failing minutes
    flask status rename / describe  # set a route's name / description (as the admin does)
    flask status hide / show        # take routes off the page or back
    flask status set RULE --failure-codes 404,429 --latency-ms 500 --slo 99.9
                                    # a route's own verdict settings ("none": global)
    flask status delete RULE        # hide a route and purge its history
    flask status flush              # write this process's buffered counts now
    flask status prune              # delete minute/hour rows past their retention

Every change goes through :mod:`~flask_server_status.service`, the same code
the admin and the API use, so the three cannot disagree.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import click
from flask.cli import AppGroup

from . import format, forms, queries, service
from .service import ServiceError
from .state import get_state

status_cli = AppGroup(
    "status",
    help="flask-server-status: list routes and incidents, rename, hide, flush, prune.",
)

F = TypeVar("F", bound=Callable[..., Any])


def _session_command(func: F) -> F:
    """Turn a :class:`~.service.ServiceError` into a one-line message and exit status 1.

    The session is removed afterwards in every case: when the extension made
    its own ``db``, Flask-SQLAlchemy's app-context teardown is confined to our
    blueprints, so a command would otherwise keep its transaction (and the
    table locks of PostgreSQL and MariaDB) open until the process ends.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ServiceError as exc:
            get_state().db.session.rollback()
            raise click.ClickException(exc.message) from None
        finally:
            get_state().db.session.remove()

    return wrapper  # type: ignore[return-value]


def _percent(value: float | None) -> str:
    return format.percent(value, missing="-")


def _time(moment: datetime | None) -> str:
    return format.utc_time(moment, missing="-")


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )
    return "\n".join(lines)


@status_cli.command("init-db")
def init_db() -> None:
    """Create the flask_status_* tables if missing and sync the routes from the app."""
    state = get_state()
    state.store.ensure_schema()
    ids = state.route_ids()
    # The internal "<unmatched>" row is not a route anyone looks for.
    count = len([rule for rule in ids if rule != "<unmatched>"])
    click.echo(f"Status tables ready in {state.engine.url.render_as_string()}; {count} routes.")


@status_cli.command("routes")
@click.option("--all", "show_all", is_flag=True, help="Include hidden routes.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def routes(show_all: bool, as_json: bool) -> None:
    """List the routes with their current status, uptime and visibility."""
    statuses = queries.route_statuses(get_state(), include_hidden=show_all)
    if as_json:
        data = [
            {
                "id": s.id,
                "rule": s.rule,
                "endpoint": s.endpoint,
                "name": s.name,
                "status": s.status,
                "hidden": s.hidden,
                "uptime": s.uptime,
                "last_data_at": s.last_data_at.isoformat() if s.last_data_at else None,
            }
            for s in statuses
        ]
        click.echo(json.dumps(data, indent=2))
        return
    if not statuses:
        click.echo("No routes." if show_all else "No visible routes (try --all).")
        return
    rows = [
        [
            s.rule,
            s.name,
            s.status,
            *(_percent(s.uptime[w]) for w in ("24h", "7d", "30d", "90d")),
            "yes" if s.hidden else "no",
            _time(s.last_data_at),
        ]
        for s in statuses
    ]
    headers = ["RULE", "NAME", "STATUS", "24H", "7D", "30D", "90D", "HIDDEN", "LAST DATA"]
    click.echo(_table(headers, rows))


@status_cli.command("incidents")
@click.option("--limit", default=20, show_default=True, help="Most incidents to list.")
def incidents_command(limit: int) -> None:
    """List recent incidents (runs of failing minutes), newest first."""
    found = queries.incidents(get_state(), limit=limit)
    if not found:
        click.echo("No incidents.")
        return
    rows = [
        [
            _time(i.start),
            "ongoing" if i.ongoing else _time(i.end),
            f"{int(i.duration.total_seconds() // 60)} min",
            i.rule,
            i.route_name,
            str(i.failures),
            str(i.requests),
        ]
        for i in found
    ]
    headers = ["START", "END", "DURATION", "RULE", "NAME", "FAILURES", "REQUESTS"]
    click.echo(_table(headers, rows))


@status_cli.command("rename")
@click.argument("rule")
@click.argument("name")
@_session_command
def rename(rule: str, name: str) -> None:
    """Set the public NAME of the route RULE (the code's docstring no longer overrides it)."""
    state = get_state()
    state.route_ids()
    route = service.update_route(state.db.session, rule, {"name": name})
    click.echo(f"Renamed {route.rule} to {route.name!r}.")


@status_cli.command("describe")
@click.argument("rule")
@click.argument("doc")
@_session_command
def describe(rule: str, doc: str) -> None:
    """Set the public description DOC of the route RULE ("" clears it)."""
    state = get_state()
    state.route_ids()
    route = service.update_route(state.db.session, rule, {"doc": doc})
    click.echo(f"Description of {route.rule} set.")


def _parsed(option: str, text: str | None, parse: Callable[[str], Any]) -> Any:
    try:
        return parse(text or "")
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


@status_cli.command("set")
@click.argument("rule")
@click.option(
    "--failure-codes",
    metavar="CODES",
    help="4xx codes that fail on this route, e.g. 404,429 (5xx: none; none: the global set).",
)
@click.option("--latency-ms", metavar="MS", help="p95 threshold in ms (none: the global setting).")
@click.option(
    "--slo", metavar="PERCENT", help="objective in percent, e.g. 99.9 (none: the global one)."
)
@_session_command
def set_overrides(
    rule: str, failure_codes: str | None, latency_ms: str | None, slo: str | None
) -> None:
    """Set the route RULE's own failure codes, latency threshold and SLO target.

    Checked as the admin form and the API check them. New failure codes
    classify the counts written from the next flush on; counts already
    written keep the classification they had.
    """
    changes: dict[str, Any] = {}
    if failure_codes is not None:
        changes["failure_codes"] = _parsed("--failure-codes", failure_codes, forms.parse_codes)
    if latency_ms is not None:
        changes["latency_threshold_ms"] = _parsed("--latency-ms", latency_ms, forms.parse_number)
    if slo is not None:
        changes["slo_target"] = _parsed("--slo", slo, forms.parse_number)
    if not changes:
        raise click.UsageError("Give --failure-codes, --latency-ms and/or --slo.")
    state = get_state()
    state.route_ids()
    route = service.update_route(state.db.session, rule, changes)
    codes = route.failure_codes
    click.echo(
        f"{route.rule}: failure codes "
        + ("global" if codes is None else ", ".join(map(str, codes)) or "5xx only")
        + f"; latency threshold {_or_global(route.latency_threshold_ms, ' ms')}"
        + f"; SLO target {_or_global(route.slo_target, ' %')}."
    )


def _or_global(value: float | None, unit: str) -> str:
    return "global" if value is None else f"{value:g}{unit}"


def _set_hidden(rules: Sequence[str], hidden: bool) -> None:
    state = get_state()
    state.route_ids()
    session = state.db.session
    # Check every rule first, so a typo changes nothing rather than half.
    for rule in rules:
        service.get_route(session, rule)
    changed = service.set_hidden(session, list(rules), hidden)
    verb = "Hid" if hidden else "Showed"
    click.echo(f"{verb} {changed} route{'s' if changed != 1 else ''}.")


@status_cli.command("hide")
@click.argument("rules", nargs=-1, required=True)
@_session_command
def hide(rules: tuple[str, ...]) -> None:
    """Take the routes RULES... off the status page (their history is kept)."""
    _set_hidden(rules, True)


@status_cli.command("show")
@click.argument("rules", nargs=-1, required=True)
@_session_command
def show(rules: tuple[str, ...]) -> None:
    """Put the hidden routes RULES... back on the status page."""
    _set_hidden(rules, False)


@status_cli.command("delete")
@click.argument("rule")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_session_command
def delete(rule: str, yes: bool) -> None:
    """Hide the route RULE and delete its whole history (as the API's DELETE does)."""
    state = get_state()
    state.route_ids()
    service.get_route(state.db.session, rule)
    if not yes:
        click.confirm(f"Delete the history of {rule} and hide it?", abort=True)
    service.delete_route(state.db.session, rule)
    click.echo(
        f"Deleted {rule}: history purged, route hidden (`flask status show` brings it back)."
    )


@status_cli.command("flush")
def flush() -> None:
    """Write the counts this process has buffered to the database now.

    Server processes flush on their own (every FLASK_STATUS_FLUSH_INTERVAL
    seconds and at exit); this is for scripts that drive the app in-process.
    """
    written = get_state().buffer.flush()
    click.echo(f"Flushed {written} request{'s' if written != 1 else ''}.")


@status_cli.command("prune")
def prune() -> None:
    """Delete minute and hour rows older than their retention now."""
    state = get_state()
    deleted = state.store.prune()
    settings = state.settings
    click.echo(
        f"Deleted {deleted} row{'s' if deleted != 1 else ''} (minute rows older than"
        f" {settings.minute_retention_days} days, hour rows older than"
        f" {settings.hour_retention_days} days)."
    )
