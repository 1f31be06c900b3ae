"""Rename, hide, show and delete routes: the one path the API and the admin share.

Each function runs in one transaction of the given SQLAlchemy session and
either applies the whole change or raises :class:`ServiceError` with nothing
changed. The API answers a :class:`ServiceError` as JSON, the admin shows it
beside the form field (or flashes it), the CLI prints it and exits with 1.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session, scoped_session

from .forms import validate_changes

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult
from .models import UNMATCHED_RULE, Log, LogDay, LogHour, Route, rule_key, utcnow

#: The route's own verdict settings; None in each means "the global setting".
OVERRIDES = ("failure_codes", "latency_threshold_ms", "slo_target")
EDITABLE = ("name", "doc", "hidden", *OVERRIDES)

#: A session, or Flask-SQLAlchemy's ``db.session`` (a scoped session).
AnySession = Session | scoped_session[Any]

#: The JSON type each editable field takes.
FIELD_TYPES: dict[str, type] = {"name": str, "doc": str, "hidden": bool}
_TYPE_NAMES = {str: "a string", bool: "true or false"}


def _is_number(value: Any) -> bool:
    # JSON true/false are not numbers here, though bool is an int in Python.
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_code(value: Any) -> bool:
    # 429.0 is an integer to JSON Schema (and to the OpenAPI document); 429.5 and true are not.
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)


def _is_codes(value: Any) -> bool:
    return isinstance(value, list) and all(_is_code(code) for code in value)


#: The shape each override takes besides null, and how a message names it.
OVERRIDE_TYPES: dict[str, tuple[Any, str]] = {
    "failure_codes": (_is_codes, "a list of status codes (integers) or null"),
    "latency_threshold_ms": (_is_number, "a number of milliseconds or null"),
    "slo_target": (_is_number, "a percentage (a number) or null"),
}


class ServiceError(Exception):
    """A request or change that cannot be made, and why; nothing was changed.

    The one error type of every operator path (API, admin, CLI)::

        raise ServiceError(404, "No route with rule '/nope'.")
        raise ServiceError(422, "The name cannot be empty.", {"name": ["Cannot be empty."]})

    :param status: the HTTP status the API answers with (400 malformed, 404
        unknown, 413 too large, 422 out of bounds).
    :param message: one sentence for a person, shown as is.
    :param errors: messages per field, when fields are at fault.
    """

    def __init__(
        self, status: int, message: str, errors: dict[str, list[str]] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors: dict[str, list[str]] = errors or {}


def check_types(changes: dict[str, Any]) -> None:
    """Refuse unknown fields and values of the wrong type, as the API reads them.

    :raises ServiceError: 400, naming the offending fields.
    """
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise ServiceError(
            400, f"Unknown fields: {', '.join(unknown)}; only {', '.join(EDITABLE)}."
        )
    wrong = {
        field: [f"{field} must be {_TYPE_NAMES[kind]}."]
        for field, kind in FIELD_TYPES.items()
        if field in changes and not _is(changes[field], kind)
    }
    for field, (fits, shape) in OVERRIDE_TYPES.items():
        if field in changes and changes[field] is not None and not fits(changes[field]):
            wrong[field] = [f"{field} must be {shape}."]
    if wrong:
        raise ServiceError(400, " ".join(m for ms in wrong.values() for m in ms), wrong)


def _is(value: Any, kind: type) -> bool:
    # Exact for bool: 0 and 1 are not booleans here, as they are not in JSON.
    return type(value) is bool if kind is bool else isinstance(value, kind)


def _storable_rule(rule: str) -> bool:
    # A rule with NUL or a lone surrogate cannot exist, and PostgreSQL or the
    # driver would fail on the query rather than find nothing.
    return "\x00" not in rule and not any("\ud800" <= c <= "\udfff" for c in rule)


def get_route(session: AnySession, rule: str) -> Route:
    """The route with this rule, or :class:`ServiceError` 404 (400 if not a string)."""
    if not isinstance(rule, str):
        raise ServiceError(400, "rule must be a string.", {"rule": ["rule must be a string."]})
    route = None
    if rule != UNMATCHED_RULE and _storable_rule(rule):
        # By its key, never its text: MariaDB's default collation finds
        # "/Report" equal to "/report"; the key compares exactly everywhere.
        route = session.execute(
            sa.select(Route).where(Route.rule_hash == rule_key(rule))
        ).scalar_one_or_none()
    if route is None:
        raise ServiceError(404, f"No route with rule {rule!r}.")
    return route


def update_route(session: AnySession, rule: str, changes: dict[str, Any]) -> Route:
    """Change ``name``, ``doc``, ``hidden`` and/or the route's own verdict settings.

    ``failure_codes``, ``latency_threshold_ms`` and ``slo_target`` replace the
    global setting for this route; None goes back to it.

    A name or description set here is the operator's from now on: the code's
    docstring no longer overwrites it.

    :raises ServiceError: 400 for an unknown field or a value of the wrong type,
        404 for an unknown rule,
        422 for a value the :class:`~.forms.RouteForm` refuses.
    """
    check_types(changes)
    route = get_route(session, rule)
    current = {"name": route.name, "doc": route.doc, "hidden": route.hidden}
    current.update({field: getattr(route, field) for field in OVERRIDES})
    errors = validate_changes(changes, current)
    if errors:
        first = next(iter(errors.values()))[0]
        raise ServiceError(422, first, errors)
    try:
        if "name" in changes:
            route.name = changes["name"].strip()
            route.custom_name = True
        if "doc" in changes:
            route.doc = changes["doc"].strip()
            route.custom_doc = True
        if "hidden" in changes:
            route.hidden = bool(changes["hidden"])
        if "failure_codes" in changes:
            codes = changes["failure_codes"]
            # Used from the next flush on: counts already written keep their outcome.
            route.failure_codes = None if codes is None else sorted({int(c) for c in codes})
        if "latency_threshold_ms" in changes:
            route.latency_threshold_ms = changes["latency_threshold_ms"]
        if "slo_target" in changes:
            route.slo_target = changes["slo_target"]
        route.updated_at = utcnow()
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return route


def delete_route(session: AnySession, rule: str) -> None:
    """Take a route and its whole history off the page.

    The row stays, hidden, so that new traffic or a restart does not bring
    the route back; showing it again in the admin does.
    """
    route = get_route(session, rule)
    try:
        for model in (Log, LogHour, LogDay):
            session.execute(sa.delete(model).where(model.route_id == route.id))
        route.hidden = True
        route.updated_at = utcnow()
        session.commit()
    except BaseException:
        session.rollback()
        raise


def set_hidden(session: AnySession, rules: list[str], hidden: bool) -> int:
    """Hide or show several routes at once; return how many changed."""
    result = session.execute(
        sa.update(Route)
        .where(
            Route.rule_hash.in_([rule_key(r) for r in rules if isinstance(r, str)]),
            Route.rule_hash != rule_key(UNMATCHED_RULE),
            Route.hidden != hidden,
        )
        .values(hidden=hidden, updated_at=utcnow())
    )
    session.commit()
    # An UPDATE's result is a CursorResult, which has the row count.
    return cast("CursorResult[Any]", result).rowcount or 0
