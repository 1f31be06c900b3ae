"""Rename, hide, show and delete routes: the one path the API and the admin share.

Each function runs in one transaction of the given SQLAlchemy session and
either applies the whole change or raises :class:`RouteError` with nothing
changed.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from .forms import validate_changes
from .models import UNMATCHED_RULE, Log, LogDay, LogHour, Route, utcnow

EDITABLE = ("name", "doc", "hidden")


class RouteError(Exception):
    """A change that cannot be made; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400, errors: dict | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.errors = errors or {}


def get_route(session: Session, rule: str) -> Route:
    """The route with this rule, or :class:`RouteError` 404."""
    route = None
    if rule != UNMATCHED_RULE:
        route = session.execute(sa.select(Route).where(Route.rule == rule)).scalar_one_or_none()
    if route is None:
        raise RouteError(f"No route with rule {rule!r}.", 404)
    return route


def update_route(session: Session, rule: str, changes: dict[str, Any]) -> Route:
    """Change ``name``, ``doc`` and/or ``hidden`` of the route with ``rule``.

    A name or description set here is the operator's from now on: the code's
    docstring no longer overwrites it.

    :raises RouteError: 400 for an unknown field, 404 for an unknown rule,
        422 for a value the :class:`~.forms.RouteForm` refuses.
    """
    unknown = sorted(set(changes) - set(EDITABLE))
    if unknown:
        raise RouteError(f"Unknown fields: {', '.join(unknown)}; only name, doc, hidden.", 400)
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


def delete_route(session: Session, rule: str) -> None:
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


def set_hidden(session: Session, rules: list[str], hidden: bool) -> int:
    """Hide or show several routes at once; return how many changed."""
    result = session.execute(
        sa.update(Route)
        .where(Route.rule.in_(rules), Route.rule != UNMATCHED_RULE, Route.hidden != hidden)
        .values(hidden=hidden, updated_at=utcnow())
    )
    session.commit()
    return result.rowcount or 0
