"""Rename, hide, show and delete routes: the one path the API and the admin share.

Each function runs in one transaction of the given SQLAlchemy session and
either applies the whole change or raises :class:`RouteError` with nothing
changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session, scoped_session

from .forms import validate_changes

if TYPE_CHECKING:
    from sqlalchemy.engine import CursorResult
from .models import UNMATCHED_RULE, Log, LogDay, LogHour, Route, utcnow

EDITABLE = ("name", "doc", "hidden")

#: A session, or Flask-SQLAlchemy's ``db.session`` (a scoped session).
AnySession = Session | scoped_session[Any]

#: The JSON type each editable field takes.
FIELD_TYPES: dict[str, type] = {"name": str, "doc": str, "hidden": bool}
_TYPE_NAMES = {str: "a string", bool: "true or false"}


class RouteError(Exception):
    """A change that cannot be made; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400, errors: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = errors or {}


def check_types(changes: dict[str, Any]) -> None:
    """Refuse unknown fields and values of the wrong type, as the API reads them.

    :raises RouteError: 400, naming the offending fields.
    """
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise RouteError(f"Unknown fields: {', '.join(unknown)}; only name, doc, hidden.", 400)
    wrong = {
        field: [f"{field} must be {_TYPE_NAMES[kind]}."]
        for field, kind in FIELD_TYPES.items()
        if field in changes and not _is(changes[field], kind)
    }
    if wrong:
        raise RouteError(" ".join(m for ms in wrong.values() for m in ms), 400, wrong)


def _is(value: Any, kind: type) -> bool:
    # Exact for bool: 0 and 1 are not booleans here, as they are not in JSON.
    return type(value) is bool if kind is bool else isinstance(value, kind)


def _storable_rule(rule: str) -> bool:
    # A rule with NUL or a lone surrogate cannot exist, and PostgreSQL or the
    # driver would fail on the query rather than find nothing.
    return "\x00" not in rule and not any("\ud800" <= c <= "\udfff" for c in rule)


def get_route(session: AnySession, rule: str) -> Route:
    """The route with this rule, or :class:`RouteError` 404 (400 if not a string)."""
    if not isinstance(rule, str):
        raise RouteError("rule must be a string.", 400, {"rule": ["rule must be a string."]})
    route = None
    if rule != UNMATCHED_RULE and _storable_rule(rule):
        candidates = session.execute(sa.select(Route).where(Route.rule == rule)).scalars()
        # MySQL's default collations compare case- and trailing-space-
        # insensitively; a rule is matched exactly.
        route = next((r for r in candidates if r.rule == rule), None)
    if route is None:
        raise RouteError(f"No route with rule {rule!r}.", 404)
    return route


def update_route(session: AnySession, rule: str, changes: dict[str, Any]) -> Route:
    """Change ``name``, ``doc`` and/or ``hidden`` of the route with ``rule``.

    A name or description set here is the operator's from now on: the code's
    docstring no longer overwrites it.

    :raises RouteError: 400 for an unknown field or a value of the wrong type,
        404 for an unknown rule,
        422 for a value the :class:`~.forms.RouteForm` refuses.
    """
    check_types(changes)
    route = get_route(session, rule)
    errors = validate_changes(
        changes, {"name": route.name, "doc": route.doc, "hidden": route.hidden}
    )
    if errors:
        first = next(iter(errors.values()))[0]
        raise RouteError(first, 422, errors)
    try:
        if "name" in changes:
            route.name = changes["name"].strip()
            route.custom_name = True
        if "doc" in changes:
            route.doc = changes["doc"].strip()
            route.custom_doc = True
        if "hidden" in changes:
            route.hidden = bool(changes["hidden"])
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
        .where(Route.rule.in_(rules), Route.rule != UNMATCHED_RULE, Route.hidden != hidden)
        .values(hidden=hidden, updated_at=utcnow())
    )
    session.commit()
    # An UPDATE's result is a CursorResult, which has the row count.
    return cast("CursorResult[Any]", result).rowcount or 0
